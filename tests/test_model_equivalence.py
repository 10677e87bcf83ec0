"""Both ends are exact: row f == timm Hiera, row mvitv2 == timm MViTv2 (every parameter random)."""

import pytest
import timm
import torch

import models


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter random, LayerNorm weights and rel-pos tables included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.05
            p.copy_(noise + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


def timm_reference(name: str, img: int) -> torch.nn.Module:
    ref = timm.create_model(name, num_classes=7, img_size=img).eval()
    for m in ref.modules():  # compare against the explicit softmax path
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    randomize(ref)
    return ref


def assert_same_logits(ref, ours, img):
    x = torch.randn(2, 3, img, img, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.shape == b.shape == (2, 7)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


# 128 px keeps the tests fast on 2 cores and still splits into 8x8-token mask units.
@pytest.mark.parametrize("name", ["hiera_tiny_224", "hiera_small_224", "mvitv2_tiny"])
def test_logits_match_timm(name):
    ref = timm_reference(name, 128)
    assert_same_logits(ref, models.from_timm(ref, input_size=(128, 128)).eval(), 128)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hiera_base_plus_224", "mvitv2_large", "hiera_large_224"])
def test_logits_match_timm_large_sizes(name):
    ref = timm_reference(name, 128)
    assert_same_logits(ref, models.from_timm(ref, input_size=(128, 128)).eval(), 128)


def test_mvitv2_large_layout_expanding_in_mlp():
    """mvitv2_large's own layout (144 channels, 2 heads, channels doubled in the last block's
    MLP) at reduced depth, so the check runs in seconds; the full model is in the slow test."""
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    cfg = MultiScaleVitCfg(depths=(1, 2, 2, 2), embed_dim=144, num_heads=2, expand_attn=False)
    ref = MultiScaleVit(cfg, img_size=(64, 64), num_classes=7).eval()
    randomize(ref)
    ours = models.build("L", step="mvitv2", num_classes=7, depths=(1, 2, 2, 2), input_size=(64, 64)).eval()
    assert ours.cfg.expand == "mlp"
    models.load_pretrained(ours, ref.state_dict())
    assert_same_logits(ref, ours, 64)


def test_hiera_sparse_features_match_timm():
    """The sparse encoder (masked units deleted) agrees with timm Hiera's masked forward."""
    ref = timm_reference("hiera_tiny_224", 128)
    ours = models.from_timm(ref, input_size=(128, 128)).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 128, 128, generator=g)
    keep = torch.zeros(2, ours.num_mask_units, dtype=torch.bool)
    for b in range(2):
        keep[b, torch.randperm(ours.num_mask_units, generator=g)[:6]] = True
    with torch.no_grad():
        a = ref.forward_features(x, mask=keep)  # (B, kept units, C): one token per unit at stage 4
        b = ours.forward_features(x, mask=keep)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_layout_does_not_change_non_overlapping_rows():
    """Row d dense runs in raster order; forcing mask units (separate-and-pad) gives the same
    logits, because kernel = stride pools never cross a unit."""
    dense = models.build("cpu-s", step="d", num_classes=5).eval()
    units = models.build("cpu-s", step="d", num_classes=5, separate_and_pad=True).eval()
    units.load_state_dict(dense.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(dense(x), units(x), atol=1e-5)
