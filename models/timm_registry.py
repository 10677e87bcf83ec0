"""Every Table 1 row at every size as a timm model: ``timm.create_model("hiera_abl_c_base")``.

Registered when ``models`` is imported, so the rows plug into timm's train.py and any codebase
that builds models by name. Names: ``hiera_abl_{row}_{size}`` for images and
``hiera_abl_{row}_{size}_{frames}x{pixels}`` for video, where

    row   mvitv2, a, b, c, d, e, f                (models/rows.yaml; f = Hiera)
    size  tiny, small, base, base_plus, large, huge  (paper Table 2: T, S, B, B+, L, H; 224 px,
          video 16x224) and cpu_xs, cpu_s (the CPU sizes: 32 / 64 px, video 8x32 / 8x64)

e.g. hiera_abl_f_base (Hiera-B), hiera_abl_mvitv2_large (MViTv2-L), hiera_abl_c_base_16x224.
``timm.list_models("hiera_abl_*")`` lists them. Each equals ``models.build(size, row, modality,
**kwargs)``: same modules, same init for the same seed. No pretrained weights (pretrained=True
is refused; load a checkpoint with models.load_pretrained or timm's checkpoint_path). timm's
kwargs map to ModelConfig fields (num_classes, in_chans, drop_rate, drop_path_rate -> drop_path,
img_size -> input_size); any other kwarg is a ModelConfig override, e.g. pool="avg".
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import register_model

from .build import build
from .steps import MODALITIES, SIZES, model_config, steps

__all__ = ["PREFIX", "SIZE_NAMES", "create", "registered", "timm_name"]  # + the entry points

PREFIX = "hiera_abl"
SIZE_NAMES = {
    "T": "tiny",
    "S": "small",
    "B": "base",
    "B+": "base_plus",
    "L": "large",
    "H": "huge",
    "cpu-xs": "cpu_xs",
    "cpu-s": "cpu_s",
}
# timm's factory arguments that are not ModelConfig fields (create_model passes them through).
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")


def timm_name(step: str, size: str, modality: str = "image") -> str:
    """The registered name of a row at a size, e.g. ("c", "B", "video") -> hiera_abl_c_base_16x224."""
    name = f"{PREFIX}_{step}_{SIZE_NAMES[size]}"
    if modality == "video":
        t, h = model_config(size, step, "video").input_size[:2]
        name += f"_{t}x{h}"
    return name


def registered() -> dict[str, tuple[str, str, str]]:
    """Every registered name -> (size, step, modality)."""
    return dict(_REGISTERED)


def create(size: str, step: str, modality: str, pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """The timm entry point behind every name: models.build with timm's kwargs translated."""
    if pretrained:
        raise ValueError(
            f"{timm_name(step, size, modality)} has no pretrained weights: create it with "
            "pretrained=False and load a checkpoint (models.load_pretrained, or checkpoint_path=)"
        )
    for key in _TIMM_ONLY:
        kwargs.pop(key, None)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    global_pool = kwargs.pop("global_pool", None)
    if global_pool not in (None, "", "avg"):
        raise ValueError(f"global_pool={global_pool!r}: these models average the tokens ('avg') only")
    if "drop_path_rate" in kwargs:
        kwargs["drop_path"] = kwargs.pop("drop_path_rate")
    if "img_size" in kwargs:
        kwargs["input_size"] = _input_size(size, step, modality, kwargs.pop("img_size"))
    num_classes = kwargs.pop("num_classes", 1000)
    with torch.device(device) if device is not None else nullcontext():
        model = build(size, step, modality, num_classes=num_classes, **kwargs)
    if dtype is not None:
        model = model.to(dtype)
    model.pretrained_cfg = model.default_cfg = _data_cfg(model)
    return model


def _input_size(size: str, step: str, modality: str, img_size) -> tuple[int, ...]:
    """timm's img_size (an int or (H, W)) -> input_size; video keeps the size's frame count."""
    hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if modality == "video" and len(hw) == 2:
        return (model_config(size, step, modality).input_size[0], *hw)
    return hw


def _data_cfg(model) -> dict:
    """What timm.data.resolve_data_config reads: input size, ImageNet normalisation, crop."""
    cfg = model.cfg
    return dict(
        input_size=(cfg.in_chans, *cfg.input_size),
        num_classes=cfg.num_classes,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        interpolation="bicubic",
        crop_pct=0.875 if cfg.modality == "image" else 1.0,
        first_conv="patch_embed.proj",
        classifier="head",
    )


def _entrypoint(name: str, size: str, step: str, modality: str):
    def fn(pretrained: bool = False, **kwargs):
        return create(size, step, modality, pretrained=pretrained, **kwargs)

    # timm registers an entry point under its __name__ and lists it under its module.
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = f"models.build({size!r}, step={step!r}, modality={modality!r}) through timm."
    return fn


_REGISTERED: dict[str, tuple[str, str, str]] = {}


def _register_all() -> None:
    module = sys.modules[__name__]
    for size in SIZES:
        for step in steps():
            for modality in MODALITIES:
                name = timm_name(step, size, modality)
                fn = _entrypoint(name, size, step, modality)
                setattr(module, name, fn)
                register_model(fn)
                _REGISTERED[name] = (size, step, modality)


_register_all()
