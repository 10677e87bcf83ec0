"""Parameters and multiply-adds (MACs) of a model, as the paper counts them (Table 2: FLOPs are
multiply-adds, one sample). torch's FlopCounterMode counts 2 FLOPs per multiply-add and nothing
for scaled_dot_product_attention's fused CPU kernels, so attention runs under the MATH backend."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one sample of shape input_shape (no batch dim)."""
    model = model.eval()
    param = next(model.parameters())
    x = torch.randn(1, *input_shape, device=param.device, dtype=param.dtype)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def build_model(cfg: dict) -> torch.nn.Module:
    """The classifier a run trains (finetune / supervised), from its resolved config."""
    import models

    m = cfg["model"]
    return models.build(
        m["size"], step=m["step"], modality=m["modality"], num_classes=cfg["data"]["num_classes"],
        **(m.get("overrides") or {}),
    )  # fmt: skip


def input_shape(model: torch.nn.Module) -> tuple[int, ...]:
    """(3, H, W) or (3, T, H, W): the model's own input size."""
    return (model.cfg.in_chans, *model.cfg.input_size)


def model_summary(cfg: dict, model: torch.nn.Module | None = None) -> dict:
    """{"params", "macs", "input_shape"} of a run's classifier, counted by the model package's
    models.summary when it exists (the model owner's convention), else by the functions above."""
    model = model if model is not None else build_model(cfg)
    shape = input_shape(model)
    try:
        from models.summary import count_macs as macs_fn
        from models.summary import count_params as params_fn
    except ImportError:
        macs_fn, params_fn = count_macs, count_params
    return {"params": params_fn(model), "macs": macs_fn(model, shape), "input_shape": list(shape)}
