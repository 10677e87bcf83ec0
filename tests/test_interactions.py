"""Interaction tables: the paired contrast, and `--table loo` end to end with a fake trainer whose
accuracy has a known interaction (attention residual worth +5 alone, +9 beside KV pooling)."""

import numpy as np

from ablations.store.predictions import save_predictions
from ablations.study import runs as R
from analysis.stats import paired_contrast, paired_difference
from models import model_config
from tests import test_cli as shared
from tests.test_cli import ablate

fake, plotted = shared.fake, shared.plotted  # fixtures: fake trainer; plots recorded (autouse)
N = 400


def test_a_two_term_contrast_is_the_paired_difference():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 200)) < 0.5, rng.random((3, 200)) < 0.6
    assert paired_contrast([(-1, a), (1, b)]) == paired_difference(a, b)


def accuracy(cfg) -> float:
    m = cfg["model"]
    flags = model_config(m["size"], m["step"], m["modality"], **m["overrides"])
    res, kv_pool = flags.attn_residual, flags.kv == "pool"
    return 50.0 + 5 * res + 3 * kv_pool + 4 * (res and kv_pool) + 2 * (flags.pool == "conv") + cfg["seed"]


def trainer(cfg, run_dir, progress=True):
    """The first top1% of N samples right: a higher accuracy is right wherever a lower one is."""
    top1 = accuracy(cfg)
    labels = np.arange(N) % 10
    right = np.arange(N) < round(top1 / 100 * N)
    top5 = np.stack(
        [np.where(right, labels, (labels + 1) % 10)] + [(labels + k) % 10 for k in range(2, 6)], 1
    )
    phase = "supervised" if cfg["mode"] == "supervised" else "finetune"
    (run_dir / phase).mkdir(parents=True, exist_ok=True)
    save_predictions({"top5": top5, "label": labels}, run_dir / phase / "predictions.npz")
    return {"top1": top1, "top5": 90.0, "train_time_s": 1.0}


def test_loo_reports_alone_path_and_difference(tmp_path, capsys, fake, monkeypatch):
    monkeypatch.setattr(R, "run_training", trainer)
    assert ablate(tmp_path, "--table", "loo", "--preset", "tiny", "--seeds", "2") == 0
    out = capsys.readouterr().out
    assert "# [refused] loo/f+relative (image)" in out
    assert "| image top-1 |" in out and "video" not in out  # only images ran: no video columns
    report = tmp_path / "runs/report/tiny"
    md = (report / "loo_interactions.md").read_text()
    # attention residual: alone (f+attn_res - f) +5; in the path (d - e, KV pooling there) +9
    line = next(ln for ln in md.splitlines() if ln.startswith("| e | f+attn_res | image |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[3].startswith("+5.0 [") and cells[4].startswith("+9.0 [") and cells[5].startswith("-4.0 [")
    assert cells[6] == "2"
    rel = next(ln for ln in md.splitlines() if ln.startswith("| a | f+relative | image |"))
    assert "refused: " in rel and "relative" in rel
    assert (report / "loo_interactions.png").exists() and (report / "loo.csv").exists()
    assert "| f+conv | mae | f pool=conv |" in (report / "loo.md").read_text()
