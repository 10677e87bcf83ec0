"""data.final_val_size: the finished model is evaluated on a larger generated set (its top-1 and
predictions.npz), while the per-epoch evaluation keeps data.val_size."""

import json

import numpy as np
import torch

from ablations.data import build_dataset
from ablations.store.predictions import load_predictions
from ablations.study import config as C
from ablations.study import runs as R
from tests import test_cli as shared
from tests.test_cli import ablate
from tests.test_interactions import trainer

fake, plotted = shared.fake, shared.plotted  # fixtures: fake trainer and measure; plots recorded


def test_the_larger_set_starts_with_the_per_epoch_items():
    cfg = C.preset_config("tiny", "image")["data"]
    small = build_dataset({**cfg, "val_size": 8}, "val", None)
    large = build_dataset({**cfg, "val_size": 24}, "val", None)
    assert len(large) == 24
    for i in range(8):
        assert torch.equal(small[i][0], large[i][0]) and small[i][1] == large[i][1]


def test_a_run_reports_its_accuracy_on_the_final_set(tmp_path):
    sets = ["--set", "data.final_val_size=96", "supervised.epochs=1"]
    assert ablate(tmp_path, "--step", "f", "--mode", "supervised", "--preset", "tiny", *sets) == 0
    run = next((tmp_path / "runs").glob("fig8/f/image/*/seed0"))
    pred = load_predictions(run / "supervised/predictions.npz")
    assert len(pred["label"]) == 96  # the final set, not data.val_size (32)
    metrics = json.loads((run / "metrics.json").read_text())
    top1 = 100 * np.mean(pred["top5"][:, 0] == pred["label"])
    assert metrics["top1"] == top1 and metrics["train"]["final_val_size"] == 96
    log = [json.loads(x) for x in (run / "supervised/log.jsonl").read_text().splitlines()]
    assert metrics["train"]["epoch_val_top1"] is not None and any("val_top1" in r or "top1" in r for r in log)


def test_the_report_shows_the_sample_noise_on_the_per_epoch_items_too(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", trainer)  # 400 predictions per run, accuracy per row
    for step in ("e", "f"):
        assert ablate(tmp_path, "--step", step, "--preset", "tiny", "--set", "data.final_val_size=400") == 0
    report = next((tmp_path / "runs/report").glob("tiny+*/table1.md")).read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| f - e | image |"))
    assert "sample (±" in line and "on the first 32)" in line
