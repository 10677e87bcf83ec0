"""Optimizer, learning-rate scaling and the per-iteration warmup + cosine schedule.

The schedule is a pure function of the optimizer-update index, so resuming needs nothing but
that index (no scheduler object whose state could be lost or double-stepped).
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2


def resolve_lr(phase_cfg: dict) -> float:
    """lr, or blr * batch_size / 256 when lr is null (MAE's linear scaling rule). batch_size is the
    global batch per optimizer update, so the lr does not depend on how many processes share it."""
    if phase_cfg.get("lr") is not None:
        return float(phase_cfg["lr"])
    return float(phase_cfg["blr"]) * int(phase_cfg["batch_size"]) / 256


def build_optimizer(model: torch.nn.Module, phase_cfg: dict, lr: float) -> torch.optim.Optimizer:
    """AdamW through timm's factory: no weight decay on 1-D params and model.no_weight_decay(),
    and layer-wise lr decay (via model.group_matcher) when layer_decay is set and < 1.

    Each param group carries ``lr_scale``; ``set_lr`` multiplies it in.
    """
    layer_decay = phase_cfg.get("layer_decay")
    if layer_decay is not None and float(layer_decay) >= 1.0:
        layer_decay = None  # 1.0 means "off"; skip the grouping entirely
    opt = create_optimizer_v2(
        model,
        opt="adamw",
        lr=lr,
        weight_decay=float(phase_cfg.get("weight_decay", 0.0)),
        betas=tuple(phase_cfg.get("betas", (0.9, 0.999))),
        layer_decay=layer_decay,
    )
    return opt


def lr_at(update: int, *, base_lr: float, min_lr: float, warmup_updates: int, total_updates: int) -> float:
    """Linear warmup from 0 to base_lr, then half-cosine down to min_lr (as MAE's lr_sched)."""
    if update < warmup_updates:
        return base_lr * update / warmup_updates
    span = max(1, total_updates - warmup_updates)
    progress = min(1.0, (update - warmup_updates) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
