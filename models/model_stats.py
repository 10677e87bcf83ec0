"""Parameters and multiply-adds (MACs) of a run's classifier, as the paper counts them. The
counting itself lives in models.summary (one place); this module maps a run config to a model."""

from __future__ import annotations

import torch

from models.build import build
from models.steps import hiera_conventions, rows_first
from models.summary import count_macs, count_params

__all__ = ["build_model", "count_macs", "count_params", "input_shape", "model_summary"]


def build_model(cfg: dict, **extra) -> torch.nn.Module:
    """The classifier a run trains (finetune / supervised), from its resolved config; `extra`
    ModelConfig overrides win over the config's."""
    m = cfg["model"]
    return build(
        m["size"], step=m["step"], modality=m["modality"], num_classes=cfg["data"]["num_classes"],
        **{**(m.get("overrides") or {}), **extra},
    )  # fmt: skip


def input_shape(model: torch.nn.Module) -> tuple[int, ...]:
    """(3, H, W) or (3, T, H, W): the model's own input size."""
    return (model.cfg.in_chans, *model.cfg.input_size)


def model_summary(cfg: dict, model: torch.nn.Module | None = None) -> dict:
    """{"params", "macs", "input_shape"} of a run's classifier. For row mvitv2 also
    "params_hiera_conventions" / "macs_hiera_conventions": the same model with Hiera's
    conventions (models.hiera_conventions), so a reader can see how much of row a's change comes
    from the convention switch rather than from dropping relative positions."""
    model = model if model is not None else build_model(cfg)
    shape = input_shape(model)
    out = {"params": count_params(model), "macs": count_macs(model, shape), "input_shape": list(shape)}
    if cfg["model"]["step"] == rows_first():
        conv = build_model(cfg, **hiera_conventions())
        out["params_hiera_conventions"] = count_params(conv)
        out["macs_hiera_conventions"] = count_macs(conv, shape)
    return out
