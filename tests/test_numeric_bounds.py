"""Hostile numbers for every numeric key of the tiny preset: ablate.py refuses
each one before any work (exit 2, a message naming the key, nothing written), or the run trains.

A deterministic draw (hypothesis is not installed): every key x (inf, nan, -1, 0, 1e30, 10**30).
"""

import pytest

from ablations.cli import main as cli
from ablations.study import config as C
from ablations.study import runs as R

VALUES = ("inf", "nan", "-1", "0", "1e30", str(10**30))
# Numeric keys the tiny preset leaves null (their type is a number all the same).
NULL_NUMBERS = [f"{p}.{k}" for p in C.PHASES["mae"] + C.PHASES["supervised"] for k in ("lr", "clip_grad")]
NULL_NUMBERS += ["pretrain.train_size", "runtime.threads", "runtime.max_batch_per_device"]


def numeric_keys() -> list[str]:
    cfg = C.preset_config("tiny", "image")
    is_number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    keys = [k for k in C.flat_keys(cfg) if is_number(C.get_dotted(cfg, k))]
    return keys + [k for k in NULL_NUMBERS if k not in keys]


# Every drawn value the harness accepts: each trains (a representative few are trained below).
ZERO_OK = {"data.num_workers", "mae.decoder_depth", "runtime.ckpt_every_steps", "bench.warmup"}
ZERO_OK |= {f"{p}.{k}" for p in ("pretrain", "finetune", "supervised")
            for k in ("weight_decay", "warmup_epochs", "min_lr", "drop_path", "aug.hflip")}  # fmt: skip
ZERO_OK |= {f"{p}.{k}" for p in ("finetune", "supervised")
            for k in ("dropout", "mixup", "cutmix", "smoothing", "aug.reprob")}  # fmt: skip
ACCEPTED = {(k, "0") for k in ZERO_OK} | {
    (f"{p}.clip_grad", "1e30") for p in C.PHASES["mae"] + ("supervised",)
}


@pytest.mark.parametrize("key", numeric_keys())
def test_every_drawn_value_is_refused_naming_the_key_or_accepted(key, capsys):
    accepted = set()
    for value in VALUES:
        code = cli.main(["--step", "f", "--preset", "tiny", "--dry-run", "--set", f"{key}={value}"])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, (key, value)
        if code == 0:
            accepted.add((key, value))
            continue
        assert code == 2, (key, value, err)
        assert len(err.strip().splitlines()) == 1 and key in err, (key, value, err)
    assert accepted == {kv for kv in ACCEPTED if kv[0] == key}


def test_the_issue_probes_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(R, "run_training", lambda *a, **k: pytest.fail("trained"))
    for sets in ("finetune.blr=inf", "finetune.lr=1e30", "pretrain.epochs=inf", "pretrain.warmup_epochs=nan"):
        args = ["--step", "f", "--preset", "tiny", "--runs-dir", str(tmp_path / "runs"), "--set", sets]
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert sets.split("=")[0] in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_accepted_values_train(tmp_path, capsys, monkeypatch):
    """The accepted draws of the pretrain, finetune and MAE keys, all at once, on a smaller tiny run
    (--only: no report; the model's speed is not measured)."""
    monkeypatch.setattr(R, "measure_model", lambda cfg, attn_backend="math": {"throughput": 1.0})
    drawn = [f"{k}={v}" for k, v in sorted(ACCEPTED) if not k.startswith(("supervised.", "bench."))]
    small = ["data.train_size=32", "data.val_size=8", "runtime.threads=1", "runtime.tensorboard=false"]
    args = [
        "--step",
        "f",
        "--preset",
        "tiny",
        "--runs-dir",
        str(tmp_path),
        "--quiet",
        "--set",
        *drawn,
        *small,
    ]
    assert cli.main([*args, "--dry-run"]) == 0
    name = capsys.readouterr().out.split("# run: ")[1].split()[0]
    assert cli.main([*args, "--only", name]) == 0
    out, err = capsys.readouterr()
    assert "[finetune] epoch 0/1" in out and "Traceback" not in out + err
    pretrain = [ln for ln in out.splitlines() if ln.startswith("[pretrain] ")]
    assert pretrain and all("(run " in ln for ln in pretrain if "ETA" in ln)  # the whole run's ETA too
    assert (tmp_path / name / "metrics.json").exists()
