"""Fidelity to the official Hiera MAE (hiera_mae.py): its pixel targets, and its checkpoints load
into ours (encoder + decoder, image and video) with every key used."""

import pytest
import torch

import models
from models.layers import units_to_raster
from models.mae import build_mae


# ---- the official code's label functions, as written in hiera_mae.py (mask: True = masked) ----
def official_pixel_label_2d(input_img, mask, size, norm=True):
    input_img = input_img.permute(0, 2, 3, 1)
    label = input_img.unfold(1, size, size).unfold(2, size, size)
    label = label.flatten(1, 2).flatten(2)
    label = label[mask]
    if norm:
        mean = label.mean(dim=-1, keepdim=True)
        var = label.var(dim=-1, keepdim=True)
        label = (label - mean) / (var + 1.0e-6) ** 0.5
    return label


def official_pixel_label_3d(input_vid, mask, size, temporal_stride=2, norm=True):
    input_vid = input_vid[:, :, ::temporal_stride, :, :]
    label = input_vid.unfold(3, size, size).unfold(4, size, size)
    label = label.permute(0, 2, 3, 4, 5, 6, 1)  # official: "Different from 2d"
    label = label.flatten(1, 3).flatten(2)
    label = label[mask]
    if norm:
        mean = label.mean(dim=-1, keepdim=True)
        var = label.var(dim=-1, keepdim=True)
        label = (label - mean) / (var + 1.0e-6) ** 0.5
    return label


def make(modality, seed=0):
    torch.manual_seed(seed)
    model_cfg = {"size": "cpu-xs", "step": "f", "modality": modality, "overrides": {}}
    mae_cfg = dict(mask_ratio=0.75, decoder_depth=1, decoder_dim=32, decoder_heads=2)
    return build_mae(model_cfg, mae_cfg).eval()


def raster_tokens(mae, t):
    """(B, U, P, D) unit-major -> (B, N, D) raster over the prediction grid, as the official code."""
    return units_to_raster(t, mae.mask_shape, mae.last_unit)


def image_row_order(mae):
    """Our image target row i = official row perm[i]: ours (ph, pw, C), official (C, ph, pw)."""
    C, (ph, pw) = mae.in_chans, mae.pred_patch
    return torch.arange(C * ph * pw).view(C, ph, pw).permute(1, 2, 0).reshape(-1)


@pytest.mark.parametrize("modality", ["image", "video"])
def test_pixel_target_equals_official_label(modality):
    mae = make(modality)
    x = torch.randn(2, 3, *mae.encoder.cfg.input_size)
    ours = raster_tokens(mae, mae.make_target(x))  # (B, N, D)
    masked = torch.rand(ours.shape[:2]) < 0.5
    size = mae.pred_patch[-1]
    if modality == "image":
        official = official_pixel_label_2d(x, masked, size)
        assert torch.allclose(ours[masked], official[:, image_row_order(mae)], atol=1e-5)
    else:
        official = official_pixel_label_3d(x, masked, size, temporal_stride=mae.pred_patch[0])
        assert ours.shape[-1] == 3 * size * size  # one frame per 2-frame token (768 at 16 px)
        assert torch.allclose(ours[masked], official, atol=1e-5)


def official_state_dict(mae) -> dict:
    """Our MAE's weights under the official MaskedAutoencoderHiera names and layouts."""
    out = {}
    for k, v in mae.state_dict().items():
        if k.startswith("encoder.norm."):
            k = "encoder_norm." + k.removeprefix("encoder.norm.")
        elif k.startswith("encoder."):
            k = k.removeprefix("encoder.")
        elif k == "decoder.pos_embed":
            k, v = "decoder_pos_embed", raster_tokens(mae, v.view(1, mae.num_units, -1, v.shape[-1]))
        elif k.startswith("decoder.pred.") and len(mae.pred_patch) == 2:
            inverse = image_row_order(mae).argsort()
            k, v = "decoder_pred." + k.removeprefix("decoder.pred."), v[inverse]
        for ours, theirs in (("fusion.heads.", "multi_scale_fusion_heads."), ("decoder.", "decoder_")):
            if k.startswith(ours):
                k = theirs + k.removeprefix(ours)
        out[k] = v.clone()
    return {"model_state": out}


@pytest.mark.parametrize("modality", ["image", "video"])
def test_official_mae_checkpoint_loads_with_every_key(modality, tmp_path):
    src = make(modality, seed=0)
    ckpt = official_state_dict(src)
    keys = ckpt["model_state"]
    for name in ("encoder_norm.weight", "decoder_embed.weight", "decoder_norm.weight", "decoder_pred.weight",
                 "mask_token", "decoder_pos_embed"):  # fmt: skip
        assert name in keys
    assert any(k.startswith("decoder_blocks.0.") for k in keys)
    assert any(k.startswith("multi_scale_fusion_heads.0.") for k in keys)
    assert not any(k.startswith(("encoder.", "fusion.", "decoder.")) for k in keys)
    torch.save(ckpt, tmp_path / "mae.pth")

    dst = make(modality, seed=1)
    report = models.load_mae_pretrained(dst, tmp_path / "mae.pth")
    assert report == {"missing": [], "unexpected": []}
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    x = torch.randn(2, 3, *src.encoder.cfg.input_size)
    keep = src.random_keep(2)
    with torch.no_grad():
        loss_src, pred_src, _, _ = src(x, keep)
        loss_dst, pred_dst, _, _ = dst(x, keep)
    assert torch.equal(pred_src, pred_dst) and torch.equal(loss_src, loss_dst)

    # the encoder part of the same file also loads into the finetuning classifier
    clf = models.build("cpu-xs", "f", modality, num_classes=5)
    info = models.load_pretrained(clf, tmp_path / "mae.pth")
    assert info["missing"] == [] and info["unexpected"] == [] and info["new_head"]


def test_mae_checkpoint_mismatch_names_the_keys():
    src = official_state_dict(make("image"))["model_state"]
    del src["decoder_norm.weight"]
    src["decoder_extra"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"decoder\.norm\.weight[\s\S]*decoder_extra"):
        models.load_mae_pretrained(make("image"), src)
    other = official_state_dict(make("image"))["model_state"]
    other["decoder_pos_embed"] = torch.zeros(1, 3, 32)  # another input size
    with pytest.raises(KeyError, match=r"shape mismatch: \['decoder.pos_embed: checkpoint \(1, 3, 32\)"):
        models.load_mae_pretrained(make("image"), other)
