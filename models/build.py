"""`models.build`: the model for a named size and Table 1 row (the one constructor everyone uses)."""

from __future__ import annotations

from .hvit import HierarchicalViT
from .steps import model_config


def build(size: str = "B", step: str = "f", modality: str = "image", num_classes: int = 1000, **overrides):
    """The model for a named size and Table 1 row. `overrides` are ModelConfig fields."""
    return HierarchicalViT(model_config(size, step, modality, num_classes=num_classes, **overrides))
