"""Training FLOPs per sample of one phase's model, for the time estimate when no rehearsal has
measured a step on the device (ablate.py --plan / --dry-run).

The phase's real model (the MAE for pretraining, the classifier otherwise, as training builds it)
runs one forward of one sample in train mode on fake tensors (train/fake_tensors.py: shapes
without compute, so a Hiera-L clip takes seconds), counted by torch.utils.flop_counter with
attention as plain matmuls (the counter sees no FLOPs in the fused CPU kernel). A training step
is counted as 3 forwards (the backward costs about twice the forward: the usual rule, not
measured here). Counts are cached beside the memory plan's measurements (flops.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ablations.store.atomic import write_atomic
from ablations.train.fake_tensors import fake_tensors
from ablations.train.memory_plan import cache_file, measurement_key, model_input, phase_model, run_amp

BACKWARD_FACTOR = 3  # forward + backward = about 3 forwards


def forward_flops(cfg: dict, phase: str) -> int:
    """FLOPs of one training-mode forward of one sample (with the loss), counted on fake tensors
    (real ones for the small CPU sizes, whose real forward takes milliseconds: fake tensors cost
    more per op than such a model's compute)."""
    fake = not str(cfg["model"]["size"]).startswith("cpu")
    with fake_tensors(fake) as small_values:
        torch.manual_seed(0)
        with small_values():
            model, loss_fn = phase_model(cfg, phase)
        model.train()
        x = model_input(model, 1)
        with small_values(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            loss_fn(model, x)
    return int(counter.get_total_flops())


def train_flops_per_sample(cfg: dict, phase: str) -> float:
    """Forward + backward FLOPs per training sample (cached per model, phase, input, dtype)."""
    path = Path(cache_file()).parent / "flops.json"
    key = measurement_key(cfg, phase, run_amp(cfg))
    try:
        table = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        table = {}
    if key not in table:
        table[key] = forward_flops(cfg, phase)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(table, indent=0))
        except OSError:  # a read-only cache costs time, never the estimate
            pass
    return BACKWARD_FACTOR * float(table[key])
