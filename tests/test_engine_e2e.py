"""End to end with the real pieces (models.build, models.mae.build_mae, ablations.data):
cpu-xs on the built-in synthetic data, the "cpu" preset shrunk to seconds."""

import json
import math

import pytest
import torch

from ablations.checkpoint import load_checkpoint
from ablations.config import preset_config
from ablations.train import run_training


def _cfg(modality="image", mode="mae", train=64, val=32, epochs=1, batch=32):
    cfg = preset_config("cpu", modality)
    cfg["mode"] = mode
    cfg["data"].update(train_size=train, val_size=val)
    cfg["runtime"].update(device="cpu", amp="none", log_every=1)
    for p in ("pretrain", "finetune", "supervised"):
        cfg[p].update(epochs=epochs, batch_size=batch)
    return cfg


def test_mae_then_finetune_tiny(tmp_path):
    torch.set_num_threads(2)
    m = run_training(_cfg(), tmp_path, progress=False)
    assert math.isfinite(m["pretrain_loss_first"]) and math.isfinite(m["finetune_loss_last"])
    assert 0.0 <= m["top1"] <= m["top5"] <= 100.0
    # The finetuned model starts from the MAE encoder: its non-head weights moved away from
    # the encoder only by the finetune steps, and the keys line up.
    enc = torch.load(tmp_path / "pretrain" / "encoder.pth", weights_only=True)
    ft = load_checkpoint(tmp_path / "finetune" / "checkpoint-last.pth")["model"]
    assert set(enc) <= set(ft) and all(k.startswith("head") for k in set(ft) - set(enc))
    done = json.loads((tmp_path / "finetune" / "done.json").read_text())
    assert done["top1"] == m["top1"]


@pytest.mark.slow
def test_video_mae_with_views_and_mixup(tmp_path):
    cfg = _cfg("video", train=32, val=8, batch=8)
    cfg["data"]["views"] = {"spatial": 1, "temporal": 2}
    cfg["finetune"].update(mixup=0.8, cutmix=1.0)
    m = run_training(cfg, tmp_path, progress=False)
    assert math.isfinite(m["finetune_loss_last"]) and m["phases"]["finetune"]["top1"] is not None


@pytest.mark.slow
def test_supervised_learns_above_chance(tmp_path):
    # ~4000 samples seen; measured on a busy 2-core CPU: a few minutes.
    cfg = _cfg(mode="supervised", train=500, val=200, epochs=8, batch=25)
    cfg["supervised"].update(warmup_epochs=1, lr=1e-3, drop_path=0.0, smoothing=0.0, weight_decay=0.0)
    cfg["supervised"]["aug"].update(rrc_scale=[0.8, 1.0])
    m = run_training(cfg, tmp_path, progress=False)
    assert m["supervised_loss_last"] < m["supervised_loss_first"]
    assert m["top1"] > 15.0  # 10 classes: chance is 10 %
