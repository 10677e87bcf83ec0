"""Weights in: timm's hiera_* / mvitv2_* models and official Hiera checkpoints.

All key conversion lives here (`convert_state_dict`); the model itself knows no foreign names.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn

from .build import build
from .layers import raster_to_units

HIERA_SIZES = {
    "hiera_tiny_224": "T",
    "hiera_small_224": "S",
    "hiera_base_224": "B",
    "hiera_base_plus_224": "B+",
    "hiera_large_224": "L",
    "hiera_huge_224": "H",
}
MVIT_SIZES = {"mvitv2_tiny": "T", "mvitv2_small": "S", "mvitv2_base": "B", "mvitv2_large": "L"}
# Keys of official MAE checkpoints that belong to the pretraining decoder, not the encoder.
MAE_ONLY = ("decoder", "mask_token", "multi_scale_fusion_heads", "pred")


def convert_state_dict(state_dict: dict, model: nn.Module | None = None) -> dict:
    """timm (hiera / mvitv2) or official Hiera keys -> this package's keys.

    Accepts the official format (weights under "model_state") and training checkpoints
    (weights under "model").
    """
    for wrapper in ("model_state", "model", "state_dict"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
            break
    if any(k.startswith("stages.") for k in state_dict):
        state_dict = _mvit_blocks_flat(state_dict)
    out = {}
    for k, v in state_dict.items():
        k = k.removeprefix("module.")
        k = re.sub(r"^head\.(fc|projection)\.", "head.", k)  # timm / official head
        k = re.sub(r"^(head\.norm|encoder_norm)\.", "norm.", k)  # timm Hiera, official MAE
        k = k.replace("shortcut_proj_attn", "proj").replace("shortcut_proj_mlp", "proj_mlp")  # MViTv2
        if k == "pos_embed_abs":
            k = "pos_embed"
        out[k] = v
    return out


def _mvit_blocks_flat(sd: dict) -> dict:
    """timm MViTv2 numbers blocks per stage (stages.s.blocks.j); ours are flat (blocks.i)."""
    depth = {}
    for k in sd:
        m = re.match(r"stages\.(\d+)\.blocks\.(\d+)\.", k)
        if m:
            s, j = int(m[1]), int(m[2])
            depth[s] = max(depth.get(s, 0), j + 1)
    offset = {s: sum(depth[t] for t in range(s)) for s in depth}
    out = {}
    for k, v in sd.items():
        m = re.match(r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", k)
        out[f"blocks.{offset[int(m[1])] + int(m[2])}.{m[3]}" if m else k] = v
    return out


def read_state_dict(source) -> dict:
    """A state dict, or the checkpoint file at `source` (a path) read on the CPU."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found; give a .pth file or a state dict")
        source = torch.load(path, map_location="cpu", weights_only=True)
    return source


def load_pretrained(model: nn.Module, source, strict: bool = True) -> dict:
    """Loads a state dict or checkpoint file (ours, timm, or official Hiera) into `model`.

    A head whose shape differs (another number of classes) or is absent (MAE checkpoints) is
    left as initialised and reported. With strict=True any other missing or unexpected key
    raises, naming the keys. Returns {"missing", "unexpected", "ignored", "new_head"}.
    """
    sd = convert_state_dict(read_state_dict(source), model)
    own = model.state_dict()
    ignored = sorted(k for k in sd if k.startswith(MAE_ONLY))
    sd = {k: v for k, v in sd.items() if k not in ignored}
    new_head = sorted(
        k for k in own if k.startswith("head.") and (k not in sd or sd[k].shape != own[k].shape)
    )
    for k in new_head:
        sd.pop(k, None)
    return _load_checked(model, sd, strict, skip=new_head) | {"ignored": ignored, "new_head": new_head}


def _load_checked(model: nn.Module, sd: dict, strict: bool, skip=()) -> dict:
    """load_state_dict that names every missing (but `skip`), unexpected and mis-shaped key;
    raises if strict."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in sd and k not in skip)
    unexpected = sorted(k for k in sd if k not in own)
    shape = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sd
        if k in own and sd[k].shape != own[k].shape
    )
    if strict and (missing or unexpected or shape):
        raise KeyError(
            "checkpoint does not match the model (is it the same size, row and modality?)\n"
            f"  missing: {missing}\n  unexpected: {unexpected}\n  shape mismatch: {shape}"
        )
    sd = {k: v for k, v in sd.items() if k in own and sd[k].shape == own[k].shape}
    model.load_state_dict(sd, strict=False)
    return {"missing": missing, "unexpected": unexpected}


# Official hiera_mae.py (MaskedAutoencoderHiera) names -> ours (models/mae.py).
_MAE_KEYS = (
    (r"^multi_scale_fusion_heads\.", "fusion.heads."),
    (r"^decoder_blocks\.", "decoder.blocks."),
    (r"^decoder_norm\.", "decoder.norm."),
    (r"^decoder_pred\.", "decoder.pred."),
    (r"^decoder_pos_embed$", "decoder.pos_embed"),
)
_MAE_OWN = ("fusion.", "decoder.", "decoder_embed.", "mask_token", "enc_mask_token", "encoder_norm.")


def convert_mae_state_dict(state_dict: dict, mae: nn.Module) -> dict:
    """Official Hiera MAE checkpoint (or ours) -> the keys of `mae` (models.mae.MaskedAutoencoder).

    Official layout: the encoder's keys unprefixed, ``encoder_norm``, ``decoder_embed``,
    ``decoder_blocks.*``, ``decoder_norm``, ``decoder_pred``, ``multi_scale_fusion_heads.*``,
    ``mask_token``, ``decoder_pos_embed``. Two tensors are reordered, not only renamed:
    ``decoder_pos_embed`` is in raster order over the token grid (ours: unit-major), and the
    image ``decoder_pred`` emits each patch as (C, ph, pw) (``get_pixel_label_2d``; ours and the
    video target: (ph, pw, C)).
    """
    sd = convert_state_dict(state_dict)  # unwraps, and renames the encoder's keys (encoder_norm -> norm)
    if any(k.startswith("encoder.") for k in sd):
        return sd  # already ours (MaskedAutoencoder.state_dict())
    out = {}
    for k, v in sd.items():
        new = k
        for pattern, repl in _MAE_KEYS:
            new = re.sub(pattern, repl, new)
        if new == k and not k.startswith(_MAE_OWN):
            new = f"encoder.{k}"
            if k.startswith("norm.") and getattr(mae, "encoder_norm", None) is not None:
                new = f"encoder_norm.{k.removeprefix('norm.')}"
        out[new] = v
    pos = out.get("decoder.pos_embed")
    if pos is not None and pos.dim() == 3 and pos.shape[1] == mae.num_units * math.prod(mae.last_unit):
        grid = tuple(m * u for m, u in zip(mae.mask_shape, mae.last_unit))
        out["decoder.pos_embed"] = raster_to_units(pos, grid, mae.last_unit)
    if mae.target == "pixel" and len(mae.pred_patch) == 2:
        C, (ph, pw) = mae.in_chans, mae.pred_patch
        for name in ("decoder.pred.weight", "decoder.pred.bias"):
            if name in out and out[name].shape[0] == C * ph * pw:
                w = out[name]
                out[name] = w.reshape(C, ph, pw, *w.shape[1:]).permute(1, 2, 0, *range(3, w.dim() + 2))
                out[name] = out[name].reshape(w.shape)
    return out


def load_mae_pretrained(mae: nn.Module, source, strict: bool = True) -> dict:
    """Loads an MAE checkpoint (official Hiera MAE, image or video, or ours) into `mae`: encoder
    and decoder. With strict=True a missing, unexpected or mis-shaped key raises, naming them.
    Returns {"missing", "unexpected"}."""
    return _load_checked(mae, convert_mae_state_dict(read_state_dict(source), mae), strict)


def timm_spec(name: str) -> tuple[str, str]:
    """timm model name (tags allowed) -> (size, step)."""
    base = name.split(".")[0]
    if base in HIERA_SIZES:
        return HIERA_SIZES[base], "f"
    if base in MVIT_SIZES:
        return MVIT_SIZES[base], "mvitv2"
    raise ValueError(
        f"no equivalent for timm model {name!r}; supported: {list(HIERA_SIZES) + list(MVIT_SIZES)}"
    )


def from_timm(name_or_model, **overrides) -> nn.Module:
    """The equivalent configured model, with the weights of a timm hiera_*_224 / mvitv2_* model.

    A name creates the timm model with pretrained=True (needs its weights downloadable or cached);
    a model instance is converted as it is.
    """
    if isinstance(name_or_model, str):
        timm_spec(name_or_model)  # fail early on unsupported names
        import timm

        try:
            src = timm.create_model(name_or_model, pretrained=True)
        except Exception as e:  # no network here: say what to do instead
            raise RuntimeError(
                f"could not load pretrained weights for {name_or_model!r} ({e}); download them where "
                "you have network access, or pass a timm model instance / use models.load_pretrained(path)"
            ) from e
    else:
        src = name_or_model
    arch = src.pretrained_cfg.get("architecture", type(src).__name__)
    size, step = timm_spec(arch)
    model = build(size, step=step, num_classes=src.num_classes, **overrides)
    load_pretrained(model, src.state_dict(), strict=True)
    return model
