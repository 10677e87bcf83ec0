"""The configurable hierarchical transformer: MViTv2 (row "mvitv2") to Hiera (row "f").

import models
model = models.build("B", step="f")                    # Hiera-B
model = models.build("L", step="mvitv2")               # MViTv2-L
model = models.build("cpu-xs", step="c", modality="video", num_classes=10)
model = timm.create_model("hiera_abl_c_base")          # every row and size, through timm
"""

from .build import build
from .config import BlockSpec, ModelConfig, PoolSpec, resolve_blocks
from .convert import from_timm, load_mae_pretrained, load_pretrained
from .hvit import HierarchicalViT
from .steps import SIZES, hiera_conventions, load_rows, model_config, rows_first, steps
from .timm_registry import timm_name  # registers hiera_abl_* with timm on import

__all__ = [
    "BlockSpec",
    "HierarchicalViT",
    "ModelConfig",
    "PoolSpec",
    "SIZES",
    "build",
    "from_timm",
    "hiera_conventions",
    "load_mae_pretrained",
    "load_pretrained",
    "load_rows",
    "model_config",
    "resolve_blocks",
    "rows_first",
    "steps",
    "timm_name",
]
