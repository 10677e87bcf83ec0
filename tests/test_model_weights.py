"""Weights in: official Hiera checkpoints (files), MAE checkpoints, clear key reports."""

import pytest
import torch

import models


def official_format(model) -> dict:
    """Our state dict renamed the way the official Hiera code names it, wrapped in model_state."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            k = k.replace("head.", "head.projection.")
        sd[k] = v.clone()
    return {"model_state": sd}


@pytest.mark.parametrize("modality", ["image", "video"])
def test_official_checkpoint_file_roundtrip(tmp_path, modality):
    src = models.build("cpu-xs", step="f", modality=modality, num_classes=4).eval()
    path = tmp_path / "hiera.pth"
    torch.save(official_format(src), path)
    dst = models.build("cpu-xs", step="f", modality=modality, num_classes=4).eval()
    report = models.load_pretrained(dst, path)
    assert report["missing"] == report["unexpected"] == []
    x = torch.randn(1, 3, *src.cfg.input_size)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_mae_checkpoint_loads_encoder_and_reports_decoder_and_new_head():
    src = models.build("cpu-xs", step="f", num_classes=0)
    sd = {("encoder_norm." + k[5:] if k.startswith("norm.") else k): v for k, v in src.state_dict().items()}
    sd.update({"decoder_embed.weight": torch.zeros(2, 2), "mask_token": torch.zeros(1, 1, 2)})
    dst = models.build("cpu-xs", step="f", num_classes=10)
    report = models.load_pretrained(dst, {"model_state": sd})
    assert report["ignored"] == ["decoder_embed.weight", "mask_token"]
    assert report["new_head"] == ["head.bias", "head.weight"]
    assert torch.equal(dst.norm.weight, src.norm.weight)


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    src = models.build("cpu-xs", step="a", num_classes=4)  # conv pools: extra keys vs row f
    dst = models.build("cpu-xs", step="f", num_classes=4)
    with pytest.raises(KeyError, match=r"unexpected: \['blocks.0.attn.norm_k.bias'"):
        models.load_pretrained(dst, src.state_dict())
    with pytest.raises(FileNotFoundError, match="not found"):
        models.load_pretrained(dst, tmp_path / "missing.pth")


def test_from_timm_rejects_unknown_names():
    with pytest.raises(ValueError, match="no equivalent for timm model 'vit_base_patch16_224'"):
        models.from_timm("vit_base_patch16_224")
