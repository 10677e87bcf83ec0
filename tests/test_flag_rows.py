"""Every single-flag change of row f, as an inline row of a user table: either it trains end to
end (MAE pretrain, then finetune) on the tiny preset, or validation refuses it before any work,
naming the fix. Real training, small data (each case seconds)."""

import json

import pytest

from ablations.cli import main as cli
from ablations.study import leak
from ablations.study import runs as R

SMALL = ["--preset", "tiny", "--set", "data.train_size=32", "data.val_size=16", "pretrain.batch_size=16",
         "finetune.batch_size=16"]  # fmt: skip
TRAINS = [
    ("stride1_pools", True),  # a stride-1 pool with kernel = stride: no pool without overlap
    ("attn_residual", True),
    ("kv", "pool"),  # = row e
    ("separate_and_pad", True),  # nothing to separate without overlapping kernels
    ("head_order", "norm_mean"),
    ("expand", "mlp"),
    ("unit_pool_pad", "-inf"),
    ("pool", "conv"),  # the MAE encoder keeps the dormant last q-pool's parameters
]
REFUSED = [
    ("position", "relative", "position='relative' with kv='mask_unit' is not supported"),
    ("overlap", True, "Fix: add separate_and_pad: true"),
]


def table(tmp_path, flag, value):
    path = tmp_path / "flags.yaml"
    path.write_text(f"mode: mae\nrows:\n  one: {{from: f, model: {{{flag}: {json.dumps(value)}}}}}\n")
    return str(path)


@pytest.fixture(autouse=True)
def fast(monkeypatch, one_thread):
    monkeypatch.setattr(R, "measure_model", lambda cfg, attn_backend="math": {"throughput": 1.0})
    monkeypatch.setattr("analysis.report.write_report", lambda runs_dir, *a, **k: runs_dir)
    monkeypatch.setattr("ablations.cli.main.print_table", lambda *a, **k: None)
    monkeypatch.setattr("ablations.cli.main.print_trends", lambda *a, **k: None)


@pytest.mark.parametrize("flag, value", TRAINS)
def test_single_flag_change_of_f_trains_mae_then_finetune(tmp_path, capsys, flag, value):
    runs = tmp_path / "runs"
    rc = cli.main(["--table", table(tmp_path, flag, value), *SMALL, "--runs-dir", str(runs), "--quiet"])
    out = capsys.readouterr().out
    assert "rerun the same command to resume" not in out  # a failure that recurs never says so
    assert rc == 0, out[-2000:]
    (folder,) = runs.glob("*/*/image/*/seed0")
    for phase in ("pretrain", "finetune"):
        assert (folder / phase / "done.json").exists()
    assert json.loads((folder / "metrics.json").read_text())["top1"] is not None


@pytest.mark.parametrize("flag, value, words", REFUSED)
def test_single_flag_change_mae_cannot_train_is_refused_with_the_fix(tmp_path, capsys, flag, value, words):
    runs = tmp_path / "runs"
    assert cli.main(["--table", table(tmp_path, flag, value), *SMALL, "--runs-dir", str(runs)]) == 2
    assert words in capsys.readouterr().err
    assert not runs.exists()


def test_a_row_that_leaks_under_sparse_mae_is_refused_at_validation(tmp_path, capsys, monkeypatch):
    """The no-leak check (ablations/study/leak.py) on an encoder made to leak: the mean of every
    pixel, masked ones included, added to its output."""
    real = leak.build_mae

    def leaky(*args, **kwargs):
        mae = real(*args, **kwargs)
        forward = mae.encoder.forward_features

        def features(x, mask=None, return_intermediates=False, mask_token=None):
            out, feats = forward(x, mask, True, mask_token)
            out = out + x.mean()
            return (out, feats) if return_intermediates else out

        mae.encoder.forward_features = features
        return mae

    leak._check.cache_clear()
    monkeypatch.setattr(leak, "build_mae", leaky)
    try:
        args = ["--table", table(tmp_path, "attn_residual", True), *SMALL, "--runs-dir", str(tmp_path / "r")]
        assert cli.main([*args, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert "rows.one: this row leaks under sparse MAE: changing only masked pixels changed" in err
        assert "or train it with mode: supervised" in err
    finally:
        monkeypatch.undo()
        leak._check.cache_clear()
    assert leak.leak_message("f", "image", {"attn_residual": True}) is None  # the real encoder holds
