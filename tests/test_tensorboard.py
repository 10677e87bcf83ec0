"""TensorBoard event files: a tiny real run writes the log records' scalars and the MAE
reconstruction figure per phase; runtime.tensorboard=false and a missing package write none."""

import sys
import warnings

import pytest
import torch
from torch import nn

from ablations.store import tblog
from ablations.study.config import MODALITIES, list_presets, load_preset, preset_config, preset_modalities
from ablations.train.loop import fit
from ablations.train.phases import run_training


def _events(folder):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tiny_run_writes_scalars_and_reconstructions(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = preset_config("tiny", "image")
    cfg["data"].update(train_size=64, val_size=16)
    cfg["runtime"]["tensorboard"] = True
    run_training(cfg, tmp_path, progress=False)
    for phase in ("pretrain", "finetune"):
        assert list((tmp_path / phase).glob("events.out.tfevents.*")), phase
    pre, ft = _events(tmp_path / "pretrain"), _events(tmp_path / "finetune")
    # tiny: batch 32 on 64 items = 2 steps, log_every 1 -> step records at steps 1 and 2
    assert [e.step for e in pre.Scalars("step/loss")] == [1, 2]
    for tag in ("step/lr", "step/items_per_s", "epoch/train_loss", "epoch/items_per_s", "epoch/time_s"):
        assert len(pre.Scalars(tag)) >= 1, tag
    losses = [r for r in (tmp_path / "pretrain" / "log.jsonl").read_text().splitlines() if '"loss"' in r]
    assert len(losses) == 2
    assert pre.Images("pretrain/reconstructions")[0].width > 0
    top1 = ft.Scalars("val/top1")
    assert len(top1) == 1 and 0 <= top1[0].value <= 100 and len(ft.Scalars("val/top5")) == 1
    assert len(ft.Scalars("val/loss")) == 1


def _fit(phase_dir, runtime):
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    phase = {"epochs": 1, "batch_size": 4, "blr": 1e-3, "weight_decay": 0.0}
    fit(
        nn.Linear(4, 2),
        lambda m, x, y: nn.functional.cross_entropy(m(x), y),
        data,
        None,
        phase,
        phase_dir=phase_dir,
        runtime={"device": "cpu", "amp": "none", **runtime},
        progress=False,
    )


def test_off_and_missing_package(tmp_path, monkeypatch, capsys):
    _fit(tmp_path / "off", {"tensorboard": False})
    assert (tmp_path / "off" / "log.jsonl").exists()
    assert not list((tmp_path / "off").glob("events.*"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setattr(tblog, "_SAID", [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one plain line, never a Python warning with its source line
        _fit(tmp_path / "missing", {"tensorboard": True})
        _fit(tmp_path / "missing2", {"tensorboard": True})
    err = capsys.readouterr().err
    assert err.count("tensorboard package is missing") == 1 and "[tb]" in err  # once per process
    assert not list((tmp_path / "missing").glob("events.*"))


def test_every_preset_leaves_tensorboard_off():
    """The README's set-up does not install tensorboard: no preset asks for it."""
    for name in list_presets():
        for modality in MODALITIES:
            if modality in preset_modalities(load_preset(name)):
                assert preset_config(name, modality)["runtime"]["tensorboard"] is False, name


def test_tags():
    assert tblog.tags({"epoch": 0, "step": 5, "loss": 0.5, "lr": 0.1, "throughput": 9}) == {
        "step/loss": 0.5,
        "step/lr": 0.1,
        "step/items_per_s": 9.0,
    }
    epoch = {
        "epoch": 0,
        "step": 8,
        "train_loss": 0.4,
        "lr": 0.1,
        "top1": 50.0,
        "val_loss": 1.2,
        "val_samples": 9,
    }
    assert tblog.tags(epoch) == {"epoch/train_loss": 0.4, "epoch/lr": 0.1, "val/top1": 50.0, "val/loss": 1.2}


def test_resume_purges_events_past_the_checkpoint(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    phase = {"epochs": 1, "batch_size": 4, "blr": 1e-3, "weight_decay": 0.0}
    rt = {"device": "cpu", "amp": "none", "log_every": 1, "ckpt_every_steps": 2, "tensorboard": True}

    def crash(epoch, steps_done):  # killed after step 3 was logged; the checkpoint holds step 2
        if steps_done == 3:
            raise KeyboardInterrupt

    def run(after_update=None):
        fit(nn.Linear(4, 2), lambda m, x, y: nn.functional.cross_entropy(m(x), y), data, None, phase,
            phase_dir=tmp_path, runtime=rt, progress=False, after_update=after_update)  # fmt: skip

    with pytest.raises(KeyboardInterrupt):
        run(crash)
    run()
    assert [e.step for e in _events(tmp_path).Scalars("step/loss")] == [1, 2, 3, 4]
