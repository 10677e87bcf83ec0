"""Named sizes (paper Table 2 + CPU sizes) and Table 1 rows (read from models/rows.yaml).

`model_config(size, step, modality, **overrides)` is the single resolver from names to a
ModelConfig; models.build() and the runner both go through it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from .config import ModelConfig
from .hints import did_you_mean

ROWS_FILE = Path(__file__).resolve().parent / "rows.yaml"

# Paper Table 2 (Hiera) and Table 8 (MViTv2). `mvitv2` holds what differs for the MViTv2 row:
# MViTv2-T has depths 1-2-5-2 (Hiera-T 1-2-7-2); timm's mvitv2_large expands in the MLP.
SIZES: dict[str, dict] = {
    "T": dict(embed_dim=96, num_heads=1, depths=(1, 2, 7, 2), mvitv2=dict(depths=(1, 2, 5, 2))),
    "S": dict(embed_dim=96, num_heads=1, depths=(1, 2, 11, 2)),
    "B": dict(embed_dim=96, num_heads=1, depths=(2, 3, 16, 3)),
    "B+": dict(embed_dim=112, num_heads=2, depths=(2, 3, 16, 3)),
    "L": dict(embed_dim=144, num_heads=2, depths=(2, 6, 36, 4), mvitv2=dict(expand="mlp")),
    "H": dict(embed_dim=256, num_heads=4, depths=(2, 6, 36, 4)),
    # CPU sizes: train in minutes on a laptop. Every stage keeps >= 1 token per mask unit.
    # cpu-xs: 32 px, 2x2-px patches -> 16x16 tokens, 4x4-token mask units (16 units), 3 stages.
    "cpu-xs": dict(
        embed_dim=32,
        num_heads=1,
        depths=(1, 2, 2),
        image_size=32,
        video_frames=8,
        patch_kernel=3,
        patch_stride=2,
        patch_padding=1,
        mask_unit=4,
        mask_unit_attn=(True, True, False),
    ),
    # cpu-s: 64 px, 2x2-px patches -> 32x32 tokens, 8x8-token mask units (16 units), 4 stages.
    "cpu-s": dict(
        embed_dim=48,
        num_heads=1,
        depths=(1, 1, 3, 1),
        image_size=64,
        video_frames=8,
        patch_kernel=3,
        patch_stride=2,
        patch_padding=1,
        mask_unit=8,
    ),
}
MODALITIES = ("image", "video")


@cache
def row_changes(path: Path = ROWS_FILE) -> dict[str, dict]:
    """Each row's own change to the previous row, as rows.yaml lists it."""
    return {str(name): dict(change or {}) for name, change in yaml.safe_load(path.read_text()).items()}


@cache
def load_rows(path: Path = ROWS_FILE) -> dict[str, dict]:
    """Cumulative rows: each row is the previous row plus the keys it lists."""
    rows, current = {}, {}
    for name, change in row_changes(path).items():
        current = {**current, **change}
        rows[name] = dict(current)
    return rows


def steps() -> list[str]:
    return list(load_rows())


def size_geometry(size: str, modality: str) -> dict:
    """Input, patch and mask-unit geometry for a size, image or video (paper Sec. 4, Table 4)."""
    spec = SIZES[size]
    S = len(spec["depths"])
    if "image_size" in spec:  # CPU sizes
        px, k, s, p, mu = (
            spec[n] for n in ("image_size", "patch_kernel", "patch_stride", "patch_padding", "mask_unit")
        )
        img = dict(
            input_size=(px, px),
            patch_kernel=(k, k),
            patch_stride=(s, s),
            patch_padding=(p, p),
            mask_unit_size=(mu, mu),
            q_stride=(2, 2),
            kv_stride_adaptive=(4, 4),
            mask_unit_attn=spec.get("mask_unit_attn", (True, True, False, False)),
            q_pool=S - 1,
            patch_bias_init="zero",  # ModelConfig.patch_bias_init: the 3x3 kernel's bias swamps its input
        )
        if modality == "image":
            return img
        return dict(
            img,
            input_size=(spec["video_frames"], px, px),
            patch_kernel=(3, k, k),
            patch_stride=(2, s, s),
            patch_padding=(1, p, p),
            mask_unit_size=(1, mu, mu),
            q_stride=(1, 2, 2),
            kv_stride_adaptive=(1, 4, 4),
        )
    if modality == "image":
        return dict(input_size=(224, 224))
    # Video (paper Table 4): 16x224^2 clips, 3x7x7 patches with stride 2x4x4, 1x8x8-token mask
    # units; MViTv2's K400 configs pool KV with adaptive stride 1x8x8.
    return dict(
        input_size=(16, 224, 224),
        patch_kernel=(3, 7, 7),
        patch_stride=(2, 4, 4),
        patch_padding=(1, 3, 3),
        mask_unit_size=(1, 8, 8),
        q_stride=(1, 2, 2),
        kv_stride_adaptive=(1, 8, 8),
    )


def model_config(size: str = "B", step: str = "f", modality: str = "image", **overrides) -> ModelConfig:
    """ModelConfig for a named size and Table 1 row; overrides win over both."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}.{did_you_mean(size, SIZES)}")
    rows = load_rows()
    if step not in rows:
        raise ValueError(f"unknown step {step!r}.{did_you_mean(step, rows)}")
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; valid: {list(MODALITIES)}")
    spec = SIZES[size]
    values = dict(embed_dim=spec["embed_dim"], num_heads=spec["num_heads"], depths=spec["depths"])
    values.update(size_geometry(size, modality))
    values.update(rows[step])
    if step == rows_first():
        values.update(spec.get("mvitv2", {}))
    return ModelConfig().replace(**{**values, **overrides})


def rows_first() -> str:
    return next(iter(load_rows()))


# Conventions that switch from MViTv2's to Hiera's at row a although no Table 1 row ablates them
# (docs/model.md, "Conventions MViTv2 and Hiera differ in"): where channels double, and the
# head's norm/mean order.
CONVENTION_KEYS = ("expand", "head_order")


def hiera_conventions() -> dict:
    """Overrides that give row mvitv2 Hiera's conventions (row a's values): the "mvitv2 with
    Hiera conventions" model, which separates row a's convention switch from its own change
    (size L: 43.7 -> 41.8 GMACs from the conventions, 41.6 at row a)."""
    rows = load_rows()
    after = rows[list(rows)[1]]
    return {k: after[k] for k in CONVENTION_KEYS}
