"""Per-sample validation predictions of a finished phase: <phase>/predictions.npz.

Arrays, in dataset-index order (the same file for any world size):
  top5   (N, k) int16: class indices, most probable first (k = min(5, classes))
  label  (N,)   int16: the true class
int16 holds up to 32767 classes; larger label spaces are stored as int32. What analysis.stats
pairs across runs: the same N samples, the same labels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ablations.store.atomic import write_atomic

FILE = "predictions.npz"


def save_predictions(pred: dict, path: Path) -> None:
    """pred: {"top5": (N, k) ints, "label": (N,) ints} (engine.evaluate(..., predictions=True))."""
    top5, label = np.asarray(pred["top5"]), np.asarray(pred["label"])
    big = max(int(top5.max(initial=0)), int(label.max(initial=0))) > np.iinfo(np.int16).max
    dtype = np.int32 if big else np.int16
    buf = io.BytesIO()
    np.savez_compressed(buf, top5=top5.astype(dtype), label=label.astype(dtype))
    write_atomic(Path(path), buf.getvalue())


class DamagedPredictions(ValueError):
    """A predictions.npz that cannot be read or has the wrong arrays; the message names it."""


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """{"top5": (N, k) int64, "label": (N,) int64}; DamagedPredictions if the file is truncated,
    not an npz, or holds other arrays (the report then leaves this run out of its comparisons)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            pred = {k: f[k].astype(np.int64) for k in ("top5", "label")}
    except Exception as e:  # BadZipFile, a missing key, zlib/EOF errors: all mean "damaged"
        why = str(e).splitlines()[0] if str(e) else ""
        raise DamagedPredictions(f"{path} is unreadable ({type(e).__name__}: {why})") from None
    top5, label = pred["top5"], pred["label"]
    if top5.ndim != 2 or label.ndim != 1 or len(top5) != len(label):
        raise DamagedPredictions(
            f"{path} holds arrays of the wrong shapes: top5 {top5.shape}, label {label.shape}"
        )
    return pred


def correct(pred: dict[str, np.ndarray], k: int = 1) -> np.ndarray:
    """(N,) bool: the label is among the first k predictions."""
    return (pred["top5"][:, :k] == pred["label"][:, None]).any(1)


def predictions_path(run_dir: Path, mode: str) -> Path:
    """Where a run's classifier predictions are: its last phase (finetune after MAE, else supervised)."""
    return Path(run_dir) / ("finetune" if mode == "mae" else "supervised") / FILE
