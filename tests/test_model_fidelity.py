"""Fidelity of the model to the paper and the official code: initialisation, and the zero padding
of separate-and-pad max pools (paper Sec. 3.2, row b)."""

import pytest
import torch

import models
from models.config import PoolSpec
from models.layers import pool_tokens
from models.summary import count_macs, count_params


def test_conv_weights_use_official_trunc_normal_init():
    """Official Hiera._init_weights: trunc-normal(0.02) on Conv1d/2d/3d weights too (the patch embed,
    and the conv pools of rows mvitv2-a); PyTorch's default would give std 0.11-0.19 here."""
    torch.manual_seed(0)
    for modality in ("image", "video"):
        m = models.build("cpu-s", step="a", modality=modality)
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d | torch.nn.Conv3d)]
        assert len(convs) > 1  # the patch embed and the pools
        w = torch.cat([c.weight.flatten() for c in convs])
        assert 0.018 < w.std() < 0.022, modality
        assert w.abs().max() < 0.1  # std 0.02: a uniform(+-1/sqrt(fan_in)) init would exceed this
        assert 0.018 < m.patch_embed.proj.weight.std() < 0.022


def _mean_cosine_between_images(model, x):
    """Mean cosine similarity of the pooled features (head removed) of different images."""
    model.head = torch.nn.Identity()
    with torch.no_grad():
        f = torch.nn.functional.normalize(model.eval()(x), dim=1)
    cos = f @ f.T
    return cos[~torch.eye(len(x), dtype=torch.bool)].mean().item()


def test_cpu_sizes_zero_the_patch_bias_so_images_start_apart():
    """Official Hiera keeps PyTorch's patch-conv bias, U(+-1/sqrt(fan_in)): fine for a 7x7x3 kernel,
    but the CPU sizes' 3x3x3 kernel (fan_in 27) gets a bias (+-0.19) that outweighs its 0.02-std
    weights' response, and every image started with nearly the same feature (supervised rows stalled
    at chance for up to 16 epochs). The CPU sizes zero it; the paper sizes keep the official init."""
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    xs = models.build("cpu-xs", step="f", num_classes=10)
    assert xs.cfg.patch_bias_init == "zero" and (xs.patch_embed.proj.bias == 0).all()
    assert _mean_cosine_between_images(xs, x) < 0.9
    old = models.build("cpu-xs", step="f", num_classes=10, patch_bias_init="pytorch")
    assert _mean_cosine_between_images(old, x) > 0.97  # the collapse the zero bias removes
    b = models.build("B", step="f", num_classes=10)
    assert b.cfg.patch_bias_init == "pytorch" and b.patch_embed.proj.bias.abs().max() > 0.01


def test_separate_and_pad_max_pool_pads_units_with_zeros():
    """A unit of all-negative features pools to 0 wherever the window reaches the unit's border
    (the paper's "relu on every feature map"); interior windows and -inf padding keep negatives."""
    C, unit = 3, (4, 4)
    x = -1.0 - torch.rand(2, 2 * 16, C)  # 2 units of 4x4 tokens, every value < -1
    zero = PoolSpec((3, 3), (1, 1), (1, 1), zero_pad=True)
    y, new_unit = pool_tokens(x, unit, zero)
    y = y.view(2, 2, 4, 4, C)
    assert new_unit == unit
    border = torch.ones(4, 4, dtype=torch.bool)
    border[1:3, 1:3] = False
    assert (y[:, :, border] == 0).all()
    assert (y[:, :, ~border] < -1).all()  # the 3x3 window of an interior token stays inside
    neg_inf, _ = pool_tokens(x, unit, PoolSpec((3, 3), (1, 1), (1, 1), zero_pad=False))
    assert (neg_inf < -1).all()


@pytest.mark.parametrize("step", ["a", "b", "c"])
def test_rows_a_to_c_zero_pad_their_max_pools_and_keep_a_flag_for_minus_inf(step):
    m = models.build("cpu-s", step=step)
    pools = [p for b in m.specs for p in (b.q_pool, b.kv_pool, b.skip_pool) if p is not None]
    assert pools and all(p.zero_pad for p in pools if any(p.padding))
    x = torch.randn(1, 3, 64, 64)
    other = models.build("cpu-s", step=step, unit_pool_pad="-inf").eval()
    other.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert not torch.allclose(m.eval()(x), other(x), atol=1e-5)
    # the dense rows pad as MViTv2's own max pool does, and rows d-f do not pad
    for dense in ("mvitv2", "d", "f"):
        specs = models.build("cpu-s", step=dense).specs
        assert not any(p.zero_pad for b in specs for p in (b.q_pool, b.kv_pool, b.skip_pool) if p)
    with pytest.raises(ValueError, match="unit_pool_pad"):
        models.build("cpu-s", step=step, unit_pool_pad="ones")


def test_row_a_mac_change_is_mostly_the_convention_switch():
    """MViTv2-L 43.7 GMACs; with Hiera's conventions 41.8; row a 41.6."""
    assert models.hiera_conventions() == {"expand": "attn", "head_order": "mean_norm"}
    with torch.device("meta"):  # shapes only: fast
        gmacs = [
            count_macs(models.build("L", step=step, **over)) / 1e9
            for step, over in (("mvitv2", {}), ("mvitv2", models.hiera_conventions()), ("a", {}))
        ]
    assert [round(g, 1) for g in gmacs] == [43.7, 41.8, 41.6]
    assert gmacs[0] - gmacs[1] > 5 * (gmacs[1] - gmacs[2])


def test_model_summary_reports_the_conventions_model_for_row_mvitv2():
    from ablations.study import config as C
    from models.model_stats import model_summary

    runs = {r.entry: r.config for r in C.resolve(C.Selection(table="table1", preset="tiny"))}
    s = model_summary(runs["mvitv2"])
    conv = models.build("cpu-xs", step="mvitv2", num_classes=10, **models.hiera_conventions())
    assert s["macs_hiera_conventions"] == count_macs(conv)
    assert s["params_hiera_conventions"] == count_params(conv)
    assert "macs_hiera_conventions" not in model_summary(runs["a"])
