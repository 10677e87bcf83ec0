"""The no-leak property of a row under sparse MAE, checked on a tiny input before any training.

MAE's premise is that the encoder never sees masked content. A built-in row is tested for it
(tests/test_model_sparse.py); a row made of other flags (an inline table row, model.overrides)
is checked here: build its sparse MAE encoder at size cpu-xs with the same flags, change only the
masked pixels, and the encoder's output must not change at all. A leaking row is refused at
validation instead of pretraining on a shortcut.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from models.mae import build_mae

TINY = "cpu-xs"  # the smallest size: the check costs one forward of a 32 px (8x32x32) input
# Flags that decide what a token sees; geometry (sizes, strides, mask units) stays cpu-xs's.
GEOMETRY = ("input_size", "in_chans", "embed_dim", "num_heads", "depths", "patch_kernel", "patch_stride",
            "patch_padding", "mask_unit_size", "q_stride", "q_pool", "kv_stride_adaptive", "mask_unit_attn",
            "num_classes")  # fmt: skip


def leak_message(step: str, modality: str, overrides: dict) -> str | None:
    """None when masked pixels cannot change the sparse encoder's output; else what leaks. A row
    whose flags cannot be built at the tiny size is not checked here (None)."""
    flags = tuple(sorted((k, v) for k, v in overrides.items() if k not in GEOMETRY))
    return _check(step, modality, flags)


@functools.cache
def _check(step: str, modality: str, flags: tuple) -> str | None:
    mae_cfg = {"mask_ratio": 0.5, "decoder_depth": 1, "decoder_dim": 8, "decoder_heads": 1}
    try:
        encoder = build_mae(
            {"size": TINY, "step": step, "modality": modality, "overrides": dict(flags)}, mae_cfg
        )
    except (ValueError, TypeError):
        return None
    enc = encoder.encoder.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, enc.cfg.in_chans, *enc.cfg.input_size, generator=gen)
    units = enc.num_mask_units
    keep = torch.zeros(2, units, dtype=torch.bool)
    for b in range(2):
        keep[b, torch.randperm(units, generator=gen)[: units // 2]] = True
    visible = F.interpolate(keep.view(2, 1, *enc.mask_spatial_shape).float(), size=x.shape[2:])
    noise = 10 * torch.randn(x.shape, generator=gen)
    with torch.no_grad():
        try:
            out, feats = enc.forward_features(x, mask=keep, return_intermediates=True)
            out2, feats2 = enc.forward_features(
                x + (1 - visible) * noise, mask=keep, return_intermediates=True
            )
        except ValueError as e:  # the model refuses the sparse forward itself
            return str(e)
    changed = [i for i, (a, b) in enumerate(zip(feats, feats2)) if not torch.equal(a, b)]
    if changed or not torch.equal(out, out2):
        first = changed[0] if changed else len(feats) - 1
        return f"changing only masked pixels changed the sparse encoder's stage-{first + 1} output"
    return None
