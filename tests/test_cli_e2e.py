"""One end-to-end run with the real pieces (model, MAE, data, engine) on the tiny preset."""

import json
import warnings

import numpy as np
import pytest
import yaml

from ablations.cli import main as cli
from ablations.data import build_dataset


def no_timing(*a, **k):
    raise AssertionError("one row has nothing to time side by side")


def test_step_f_tiny_end_to_end(tmp_path, capsys, one_thread, monkeypatch):
    monkeypatch.setattr("analysis.speed_table.table_speeds", no_timing)
    runs = tmp_path / "runs"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # what a user's python prints: each warning once, with its line
        assert cli.main(["--step", "f", "--preset", "tiny", "--runs-dir", str(runs), "--quiet"]) == 0
    # no Python warning (a source line in the output) from a fresh run folder, TensorBoard's included
    assert [str(w.message) for w in shown if not issubclass(w.category, DeprecationWarning)] == []
    folder = runs / "table1/f/image/tiny/seed0"
    m = json.loads((folder / "metrics.json").read_text())
    assert 0 <= m["top1"] <= 100 and m["params"] > 1e4 and m["macs"] > 1e5 and m["throughput"] > 0
    assert set(m["model"]["throughput_by_dtype"]) == {"float32", "bfloat16"}
    for phase in ("pretrain", "finetune"):  # the engine's files, inside the run folder
        assert (folder / phase / "done.json").exists() and (folder / phase / "log.jsonl").exists()
    assert (runs / "report/tiny/table1.md").exists() and (runs / "report/tiny/table1_speed.png").exists()
    # MAE reconstructions: written when pretraining ends, gathered into the report
    assert (folder / "pretrain" / "reconstructions.npz").exists()
    png = (runs / "report/tiny/reconstructions_table1_f_image_seed0.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "| f | f. replace KV pooling" in out
    assert "| row | setting | image top-1 | paper | im/s | x mvitv2 | paper im/s | paper x |\n" in out
    report = {p.name for p in (runs / "report/tiny").iterdir()}
    assert not {n for n in report if n.startswith(("table3", "fig8", "speed_"))}, report
    # per-sample val predictions, in dataset order, written beside done.json
    pred = np.load(folder / "finetune" / "predictions.npz")
    val = build_dataset(yaml.safe_load((folder / "config.yaml").read_text())["data"], split="val")
    assert pred["top5"].dtype == pred["label"].dtype == np.int16 and pred["top5"].shape == (len(val), 5)
    assert pred["label"].tolist() == [int(val[i][1]) for i in range(len(val))]
    assert 100 * (pred["top5"][:, 0] == pred["label"]).mean() == pytest.approx(m["top1"])
    assert (runs / "report/tiny/table1_differences.csv").exists()

    assert cli.main(["--step", "f", "--preset", "tiny", "--runs-dir", str(runs), "--quiet"]) == 0
    assert "[skip] table1/f/image/tiny/seed0" in capsys.readouterr().out
