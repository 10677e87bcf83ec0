"""Measured training step times, kept per device kind: what a rehearsal (ablate.py --rehearse)
measured, so that --plan and --dry-run can estimate a run's wall time from a real step on this
kind of device instead of from its MACs.

    <HIERA_CACHE or ~/.cache/hiera-ablations>/step_times.json
    {"<device kind>": {"<model, phase, input, dtype key>": {"s_per_sample", "batch", "measured_at"}}}

The key is the memory plan's measurement key (memory_plan.measurement_key): the model, the MAE for
pretraining, the input size and the autocast dtype, which is what a step's time depends on besides
the batch and the device.
"""

from __future__ import annotations

import json
import time

from ablations.store.atomic import write_atomic
from ablations.train.memory_plan import cache_file, measurement_key, run_amp


def store_file():
    return cache_file().parent / "step_times.json"


def read_all() -> dict:
    path = store_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):  # a damaged cache costs an estimate, never a command
        return {}
    return data if isinstance(data, dict) else {}


def record(cfg: dict, phase: str, device: str, s_per_sample: float, batch: int) -> None:
    """Keep one measured step (seconds per sample at this per-device batch) for this device kind."""
    data = read_all()
    key = measurement_key(cfg, phase, run_amp(cfg))
    entry = {"s_per_sample": s_per_sample, "batch": batch, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    data.setdefault(device, {})[key] = entry
    try:
        store_file().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(store_file(), json.dumps(data, indent=0))
    except OSError as e:
        print(f"[note] the step time is not kept ({e}); set HIERA_CACHE to a writable folder")


def lookup(cfg: dict, phase: str, device: str | None = None) -> tuple[str, dict] | None:
    """(device kind, entry) of a measured step of this phase's model: on `device` if given and
    measured there, else on any GPU kind (the most recent), else None."""
    key = measurement_key(cfg, phase, run_amp(cfg))
    data = read_all()
    if device is not None and key in data.get(device, {}):
        return device, data[device][key]
    gpus = [(d, e[key]) for d, e in data.items() if key in e and not d.startswith("cpu")]
    return max(gpus, key=lambda de: de[1]["measured_at"]) if gpus else None
