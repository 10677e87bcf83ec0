"""Sparse MAE validity: masked content cannot leak, for every row a-f, images and video."""

import pytest
import torch
import torch.nn.functional as F

import models
from models.config import PoolSpec
from models.layers import pool_tokens, raster_to_units

ROWS = ["a", "b", "c", "d", "e", "f"]


def random_keep(batch, units, kept, seed=0):
    g = torch.Generator().manual_seed(seed)
    keep = torch.zeros(batch, units, dtype=torch.bool)
    for b in range(batch):
        keep[b, torch.randperm(units, generator=g)[:kept]] = True
    return keep


def assert_masked_pixels_cannot_change_outputs(m) -> list:
    """Changing the pixels of masked units changes nothing the sparse encoder outputs (every
    stage), while changing visible pixels does. Returns the stage features (half the units kept)."""
    x = torch.randn(2, 3, *m.cfg.input_size)
    keep = random_keep(2, m.num_mask_units, m.num_mask_units // 2)
    visible = F.interpolate(keep.view(2, 1, *m.mask_spatial_shape).float(), size=x.shape[2:])
    with torch.no_grad():
        out, feats = m.forward_features(x, mask=keep, return_intermediates=True)
        out_masked_changed, feats2 = m.forward_features(
            x + (1 - visible) * 10 * torch.randn_like(x), mask=keep, return_intermediates=True
        )
        out_visible_changed = m.forward_features(x + visible * torch.randn_like(x), mask=keep)
    assert torch.equal(out, out_masked_changed)
    assert all(torch.equal(a, b) for a, b in zip(feats, feats2))
    assert (out - out_visible_changed).abs().max() > 1e-3
    return feats


@pytest.mark.parametrize("modality", ["image", "video"])
@pytest.mark.parametrize("step", ROWS)
def test_masked_pixels_cannot_change_sparse_outputs(step, modality):
    torch.manual_seed(0)
    m = models.build("cpu-xs", step=step, modality=modality, num_classes=0).eval()
    feats = assert_masked_pixels_cannot_change_outputs(m)
    kept = m.num_mask_units // 2
    for f, dim, unit in zip(feats, m.stage_dims, m.stage_unit_sizes):
        assert f.shape == (2, kept, *unit, dim)


def test_masked_units_are_deleted_not_computed():
    """Tokens through the encoder scale with the kept units: half the units, half the tokens."""
    m = models.build("cpu-s", step="f", num_classes=0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = m.forward_features(x)
        half = m.forward_features(x, mask=random_keep(1, m.num_mask_units, m.num_mask_units // 2))
    assert half.shape[1] * 2 == full.shape[1]


def test_all_visible_sparse_equals_dense_and_mask_token_variant():
    m = models.build("cpu-s", step="f", num_classes=0).eval()
    x = torch.randn(2, 3, 64, 64)
    keep_all = torch.ones(2, m.num_mask_units, dtype=torch.bool)
    token = torch.randn(m.cfg.embed_dim)
    with torch.no_grad():
        dense = m.forward_features(x)
        assert torch.allclose(m.forward_features(x, mask=keep_all), dense, atol=1e-5)
        assert torch.allclose(m.forward_features(x, mask=keep_all, mask_token=token), dense, atol=1e-5)
        # Dense variant with a real mask keeps every unit (MaskFeat-style) and runs every row.
        keep = random_keep(2, m.num_mask_units, 6)
        out = m.forward_features(x, mask=keep, mask_token=token)
        assert out.shape == dense.shape
        mv = models.build("cpu-s", step="mvitv2", num_classes=0).eval()
        assert mv.forward_features(x, mask=keep, mask_token=token).shape[0] == 2


@pytest.mark.parametrize("op", ["max", "conv"])
def test_separate_and_pad_equals_plain_pooling_away_from_unit_borders(op):
    """Pooling inside 4x4 units == pooling the whole 16x16 grid wherever the 3x3 window stays
    inside one unit (kernel 3, stride 2: the second output of each unit)."""
    torch.manual_seed(0)
    C, grid, unit = 5, (16, 16), (4, 4)
    spec = PoolSpec((3, 3), (2, 2), (1, 1))
    conv = torch.nn.Conv2d(C, C, 3, 2, 1, groups=C, bias=False) if op == "conv" else None
    x = torch.randn(2, 16 * 16, C)
    per_unit, new_unit = pool_tokens(raster_to_units(x, grid, unit), unit, spec, conv)
    whole, _ = pool_tokens(x, grid, spec, conv)  # U = 1: plain pooling over the grid
    whole_units = raster_to_units(whole, (8, 8), new_unit)
    a = per_unit.view(2, 16, 2, 2, C)
    b = whole_units.view(2, 16, 2, 2, C)
    assert new_unit == (2, 2)
    assert torch.allclose(a[:, :, 1, 1], b[:, :, 1, 1], atol=1e-6)  # window inside the unit
    assert not torch.allclose(a[:, :, 0, 0], b[:, :, 0, 0])  # window crosses the unit border


def test_row_a_without_separate_and_pad_differs():
    """Separate-and-pad is a real change in the dense model (it is what rows a-c pay for)."""
    sp = models.build("cpu-s", step="a", num_classes=3).eval()
    plain = models.build("cpu-s", step="a", num_classes=3, separate_and_pad=False).eval()
    plain.load_state_dict(sp.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(sp(x), plain(x), atol=1e-4)


@pytest.mark.parametrize(
    "unit, kernel, stride, padding, narrowed",
    [
        ((1, 4, 4), (3, 3, 3), (1, 1, 1), (1, 1, 1), 1),  # video unit: 1 frame
        ((1, 4, 4), (3, 3, 3), (1, 2, 2), (1, 1, 1), 1),  # Q pooling at a stage change
        ((1, 1, 1), (3, 3, 3), (1, 1, 1), (1, 1, 1), 3),  # a late stage's 1x1x1 unit
        ((2, 4, 4), (3, 3, 3), (1, 1, 1), (1, 1, 1), 0),  # 2 frames: every tap reads data
    ],
)
def test_conv_pooling_in_units_skips_only_taps_that_read_padding(unit, kernel, stride, padding, narrowed):
    """Separate-and-pad conv pooling drops the taps of a 1-token-wide unit dim that only see zero
    padding (3x less work per such dim): outputs and gradients equal the full conv's."""
    from torch.utils.flop_counter import FlopCounterMode

    from models import layers

    torch.manual_seed(0)
    C = 6
    conv = torch.nn.Conv3d(C, C, kernel, stride, padding, groups=C, bias=False)
    y = torch.randn(40, C, *unit, requires_grad=True)
    fast = layers._conv_in_units(conv, y)
    (gy_fast, gw_fast) = torch.autograd.grad(fast.square().sum(), (y, conv.weight))
    full = conv(y)
    (gy_full, gw_full) = torch.autograd.grad(full.square().sum(), (y, conv.weight))
    assert fast.shape == full.shape
    assert torch.allclose(fast, full, atol=1e-6)
    assert torch.allclose(gy_fast, gy_full, atol=1e-6) and torch.allclose(gw_fast, gw_full, atol=1e-6)
    flops = []
    for f in (lambda: layers._conv_in_units(conv, y), lambda: conv(y)):
        with FlopCounterMode(display=False) as counter:
            f()
        flops.append(counter.get_total_flops())
    assert flops[1] == flops[0] * 3**narrowed
    # The taps it drops are exactly those the full conv gives no gradient: they only read zeros.
    assert (gw_full != 0).sum() == conv.weight.numel() // 3**narrowed


@pytest.mark.parametrize("modality", ["image", "video"])
@pytest.mark.parametrize("step", ROWS)
@pytest.mark.parametrize("encoder", ["classifier", "mae"])
def test_nothing_masked_sparse_equals_dense_every_row(step, modality, encoder):
    """The sparse path with every unit kept is the dense model, for each row a-f, image
    and video, as the classifier (finetuning) and as the MAE encoder (one q-pool less): every
    stage's features, and the MAE's fused latent. Bitwise where the dense model also runs in
    mask units; rows d-e run dense in raster order, so they agree to float rounding."""
    from models.mae import build_mae

    torch.manual_seed(0)
    if encoder == "mae":
        model_cfg = {"size": "cpu-xs", "step": step, "modality": modality}
        dec = {"mask_ratio": 0.9, "decoder_depth": 1, "decoder_dim": 16, "decoder_heads": 1}
        mae = build_mae(model_cfg, dec)
        m = mae.eval().encoder
    else:
        m = models.build("cpu-xs", step=step, modality=modality, num_classes=10).eval()
    x = torch.randn(2, 3, *m.cfg.input_size)
    keep = torch.ones(2, m.num_mask_units, dtype=torch.bool)
    with torch.no_grad():
        d_out, d_feats = m.forward_features(x, return_intermediates=True)
        s_out, s_feats = m.forward_features(x, mask=keep, return_intermediates=True)
        pairs = list(zip(d_feats, s_feats)) + [(d_out.mean(1), s_out.mean(1))]
        if encoder == "mae":
            pairs.append((mae.encoder.norm(mae.fusion(d_feats)), mae.forward_encoder(x, keep)))
        else:
            pairs.append((m(x), m.forward_head(s_out)))
    assert len(d_feats) == len(m.stage_dims)
    for dense, sparse in pairs:
        assert dense.shape == sparse.shape
        if m.needs_units:
            assert torch.equal(dense, sparse)
        else:
            assert torch.allclose(dense, sparse, atol=1e-5, rtol=0)
