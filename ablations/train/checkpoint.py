"""Checkpoints: plain dicts, written atomically, loadable with torch.load(weights_only=True).

The checkpoint a save replaces stays as checkpoint-prev.pth, and loading falls back to it when
checkpoint-last.pth is damaged.

A checkpoint holds everything needed to continue bit-exactly: model, optimizer, AMP scaler,
the position (epoch, step inside the epoch), RNG states of every rank, and bookkeeping (loss
history, elapsed time, the log size at save time so a resumed run can drop lines it will redo).
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from ablations.errors import RunError
from ablations.store.atomic import atomic_path


def prev_path(path: Path) -> Path:
    """checkpoint-last.pth -> checkpoint-prev.pth: the one before, kept in case the last is damaged."""
    name = Path(path).name
    return Path(path).with_name(name.replace("-last", "-prev") if "-last" in name else f"prev-{name}")


class CorruptCheckpoint(RunError):
    """No readable checkpoint; the message names the files and what to do."""


def save_checkpoint(obj, path: Path) -> None:
    """Write path atomically, keeping the checkpoint it replaces as checkpoint-prev.pth: a
    checkpoint damaged after it was written (truncated copy, bad disk) still leaves one to resume."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        if path.exists():
            os.replace(path, prev_path(path))


def load_checkpoint(path: Path, log=print) -> dict | None:
    """The newest readable checkpoint: path, else its checkpoint-prev.pth (said in one line);
    None if there is neither; CorruptCheckpoint if every one there is damaged.
    weights_only=True: plain data only."""
    path = Path(path)
    errors = []
    for candidate in (path, prev_path(path)):
        if not candidate.exists():
            continue
        try:
            ckpt = torch.load(candidate, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated zip, bad pickle, I/O error: all mean "not usable"
            errors.append(f"{candidate} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            continue
        if errors:
            log(f"[resume] {errors[0]}; resuming from the previous checkpoint {candidate.name}")
        return ckpt
    if errors:
        raise CorruptCheckpoint(
            "; ".join(errors) + f". Delete {path.parent} to restart this phase from scratch "
            "(finished phases of the run are kept), or --force to retrain the whole run."
        )
    return None


def get_rng_state() -> dict:
    """RNG states as plain tensors/ints/tuples (all allowed by the weights_only unpickler)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def training_state(model, optimizer, scaler, *, rng: list, **extra) -> dict:
    """The checkpoint dict: model (unwrapped from DDP), optimizer, scaler, every rank's RNG, and
    plain bookkeeping passed as keywords (epoch, step, meter, history, elapsed_s, log_bytes, ...)."""
    raw = getattr(model, "module", model)
    return {"model": raw.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng, **extra}  # fmt: skip


def restore_training_state(
    ckpt: dict, model, optimizer, scaler, rank: int, world_size: int, seed: int
) -> None:
    """Load weights, optimizer and scaler, and this rank's RNG streams."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    if len(ckpt["rng"]) == world_size:
        set_rng_state(ckpt["rng"][rank])
    else:  # another world size cannot replay the same random streams anyway
        warnings.warn("resuming with a different world size: RNG streams are reseeded", stacklevel=2)
        seed_everything(seed + rank + 7919 * ckpt["epoch"])
