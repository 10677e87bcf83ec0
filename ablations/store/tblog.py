"""TensorBoard event files beside each phase's log.jsonl, fed from the same log records.

    runs/<run>/<phase>/events.out.tfevents.*     tensorboard --logdir runs

Tags (x axis: the record's global data step):
    step records  -> step/loss, step/lr, step/items_per_s
    epoch records -> epoch/train_loss, epoch/lr, epoch/items_per_s, epoch/time_s,
                     val/top1, val/top5, val/loss
    pretraining   -> pretrain/reconstructions (input / masked / reconstruction rows, as one image)

Off in every preset: the README's set-up does not install the optional `tensorboard` package
(~55 MB with grpcio and protobuf) and log.jsonl holds the same records. `runtime.tensorboard: true`
writes them when it is installed (pip install -e '.[tb]'); without it one line says so, once per
process (a plain line, not a Python warning with its source line), and training goes on. Only
rank 0 writes. On resume, events past the checkpoint's step are purged (they are redone), as
log.jsonl is truncated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# record key -> tag name (under "step/", "epoch/" or "val/")
NAMES = {"loss": "loss", "train_loss": "train_loss", "lr": "lr", "throughput": "items_per_s",
         "epoch_time_s": "time_s", "top1": "top1", "top5": "top5", "val_loss": "loss"}  # fmt: skip
VAL_KEYS = ("top1", "top5", "val_loss")
MISSING = (
    "[tensorboard] runtime.tensorboard=true but the tensorboard package is missing: no event files "
    "(pip install -e '.[tb]', or set runtime.tensorboard=false)"
)
_SAID: list = []  # the missing package is said once per process


def writer(log_dir: Path, enabled: bool, purge_step: int | None = None):
    """A SummaryWriter for log_dir, or None when disabled or the package is missing (said once)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _SAID:
            _SAID.append(True)
            print(MISSING, file=sys.stderr, flush=True)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def tags(record: dict) -> dict:
    """{tag: value} of a log record's numbers ("step/loss": 0.61, "val/top1": 42.0, ...)."""
    kind = "epoch" if "train_loss" in record else "step"
    out = {}
    for key, value in record.items():
        if key in NAMES and isinstance(value, (int, float)):
            out[f"{'val' if key in VAL_KEYS else kind}/{NAMES[key]}"] = float(value)
    return out


def write_record(tb, record: dict) -> None:
    """Scalars of one log record at its global step; flushed, so a killed run keeps them."""
    if tb is None:
        return
    for tag, value in tags(record).items():
        tb.add_scalar(tag, value, record["step"])
    tb.flush()


def write_image(log_dir: Path, enabled: bool, tag: str, image: np.ndarray, step: int) -> None:
    """One picture, uint8 (H, W, 3) (e.g. the MAE reconstructions), as an image event in log_dir."""
    tb = writer(log_dir, enabled)
    if tb is None:
        return
    tb.add_image(tag, image, step, dataformats="HWC")
    tb.close()
