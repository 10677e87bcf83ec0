"""`pool: avg`, a component added as a flag (docs/extending.md): average pooling for Q/K/V.

The checks every pooling flag passes: equivalence with a reference (reshape-mean for kernel =
stride, F.avg_pool on a dense grid for overlapping kernels, per-unit F.avg_pool inside units),
no leak under sparse masking, sparse-with-nothing-masked equals dense, params and MACs.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import models
from models.config import PoolSpec
from models.layers import pool_tokens, raster_to_units, units_to_raster
from models.summary import count_macs, count_params
from tests.test_model_sparse import assert_masked_pixels_cannot_change_outputs

AVG_POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}
# Rows with pool: avg that sparse MAE accepts: kernel = stride (f, d), overlapping inside units
# (c, b with its stride-1 pools), and KV pooling (e).
AVG_ROWS = ["b", "c", "d", "e", "f"]


@pytest.mark.parametrize("grid, unit, stride", [((8, 8), (4, 4), (2, 2)), ((2, 8, 8), (1, 4, 4), (1, 2, 2))])
def test_kernel_equal_stride_is_reshape_mean(grid, unit, stride):
    torch.manual_seed(0)
    C = 5
    x = torch.randn(2, 3, math.prod(grid), C)  # (*lead, N, C): lead = batch, heads
    spec = PoolSpec(stride, stride, (0,) * len(stride), op="avg")
    y, new_unit = pool_tokens(raster_to_units(x.flatten(0, 1), grid, unit).view_as(x), unit, spec)
    assert new_unit == tuple(u // s for u, s in zip(unit, stride))
    # reference: mean over each stride block of the raster grid
    D = len(grid)
    blocks = x.reshape(2, 3, *[v for g, s in zip(grid, stride) for v in (g // s, s)], C)
    ref = blocks.mean(dim=[3 + 2 * d for d in range(D)]).reshape(6, -1, C)
    out_grid = tuple(g // s for g, s in zip(grid, stride))
    ref_units = raster_to_units(ref, out_grid, new_unit).view_as(y)
    assert torch.allclose(y, ref_units, atol=1e-6)
    # the same numbers as F.avg_pool on the dense image (U = 1)
    dense, _ = pool_tokens(x, grid, spec)
    img = x.flatten(0, 1).transpose(1, 2).reshape(6, C, *grid)
    pooled = AVG_POOL[D](img, stride, stride).flatten(2).transpose(1, 2).view_as(dense)
    assert torch.allclose(dense, pooled, atol=1e-6)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_overlapping_avg_pool_equals_avg_pool2d_without_counting_padding(stride):
    torch.manual_seed(0)
    C, grid = 4, (8, 8)
    x = torch.randn(2, 64, C)
    spec = PoolSpec((3, 3), stride, (1, 1), op="avg")
    y, new_unit = pool_tokens(x, grid, spec)  # U = 1: the whole grid
    img = x.transpose(1, 2).reshape(2, C, *grid)
    ref = F.avg_pool2d(img, 3, stride, 1, count_include_pad=False)
    assert new_unit == tuple(ref.shape[2:])
    assert torch.allclose(y, ref.flatten(2).transpose(1, 2), atol=1e-6)
    # a constant map stays constant: padding is not averaged in (count_include_pad=False)
    const, _ = pool_tokens(torch.full((1, 64, C), 3.0), grid, spec)
    assert torch.allclose(const, torch.full_like(const, 3.0))


def test_avg_pool_inside_units_is_avg_pool2d_of_each_unit_as_its_own_image():
    torch.manual_seed(0)
    C, grid, unit = 3, (8, 8), (4, 4)
    x = torch.randn(2, 64, C)
    spec = PoolSpec((3, 3), (2, 2), (1, 1), op="avg")
    y, new_unit = pool_tokens(raster_to_units(x, grid, unit), unit, spec)
    units = x.view(2, 2, 4, 2, 4, C).permute(0, 1, 3, 5, 2, 4).reshape(8, C, 4, 4)  # each unit an image
    ref = F.avg_pool2d(units, 3, 2, 1, count_include_pad=False)  # (8, C, 2, 2)
    assert new_unit == (2, 2)
    assert torch.allclose(y, ref.view(2, 4, C, 4).transpose(2, 3).reshape(2, 16, C), atol=1e-6)
    # pooling the whole grid differs at unit borders: the units really are separated
    whole, _ = pool_tokens(x, grid, spec)
    assert not torch.allclose(units_to_raster(y, (2, 2), new_unit), whole, atol=1e-4)


def test_flag_is_interpreted_in_resolve_blocks():
    m = models.build("cpu-s", step="c", pool="avg")
    qkv = [p for b in m.specs for p in (b.q_pool, b.kv_pool) if p is not None]
    assert qkv and all(p.op == "avg" and not p.zero_pad for p in qkv)
    assert all(b.skip_pool.op == "max" for b in m.specs if b.skip_pool is not None)  # skip stays max
    assert not any(n.startswith(("pool_", "norm_")) for blk in m.blocks for n, _ in blk.attn.named_children())
    with pytest.raises(ValueError, match="pool="):
        models.build("cpu-s", step="f", pool="mean")


@pytest.mark.parametrize("modality", ["image", "video"])
@pytest.mark.parametrize("step", AVG_ROWS)
def test_avg_pool_rows_do_not_leak_masked_pixels(step, modality):
    torch.manual_seed(0)
    m = models.build("cpu-xs", step=step, modality=modality, num_classes=0, pool="avg").eval()
    assert_masked_pixels_cannot_change_outputs(m)


@pytest.mark.parametrize("step", AVG_ROWS)
def test_avg_pool_sparse_with_nothing_masked_equals_dense(step):
    torch.manual_seed(0)
    m = models.build("cpu-s", step=step, num_classes=0, pool="avg").eval()
    x = torch.randn(2, 3, 64, 64)
    keep_all = torch.ones(2, m.num_mask_units, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(m.forward_features(x, mask=keep_all), m.forward_features(x), atol=1e-5)


@pytest.mark.parametrize("step", ["mvitv2", "b", "f"])
def test_avg_pool_params_and_macs(step):
    """No parameters, the MACs of max pooling (neither is a multiply-add); against conv pooling
    it saves exactly the conv + LayerNorm parameters."""
    with torch.device("meta"):
        avg, mx, conv = (models.build("B", step=step, pool=p) for p in ("avg", "max", "conv"))
        macs = [count_macs(m) for m in (avg, mx, conv)]
    assert count_params(avg) == count_params(mx)
    assert macs[0] == macs[1]
    pool_params = sum(
        p.numel() for n, p in conv.named_parameters() if ".attn.pool_" in n or ".attn.norm_" in n
    )
    assert pool_params > 0 and count_params(conv) - count_params(avg) == pool_params
    assert macs[2] > macs[0]


def test_avg_pool_changes_the_model_and_trains():
    torch.manual_seed(0)
    mx = models.build("cpu-s", step="c", num_classes=3)
    avg = models.build("cpu-s", step="c", num_classes=3, pool="avg")
    avg.load_state_dict(mx.state_dict())  # same parameters: pooling has none
    x = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(mx.eval()(x), avg.eval()(x), atol=1e-5)
    avg.train()(x).square().sum().backward()
    assert all(p.grad is not None for p in avg.parameters())
