"""Token layout helpers, unit-wise pooling, relative positions, and the one attention block.

Token layout. Tokens are kept *unit-major*: (B, N, C) with N = U * prod(unit), all tokens of
one unit contiguous and in raster order inside the unit, units in raster order. `unit` is the
per-dimension size of a unit at the current resolution. With mask units (sparse MAE,
separate-and-pad, mask unit attention) U = number of (kept) mask units; a dense model without
any per-unit op uses U = 1 and unit = the whole token grid, i.e. plain raster order.

This one layout serves every Table 1 row:
- pooling inside units (separate-and-pad, Fig. 4d) is a reshape to (B*U, C, *unit) and an
  ordinary padded conv / max pool;
- kernel = stride max pooling is a view + elementwise maxima, no copy (like Hiera's Unroll);
- mask unit attention is a view to (B, heads, U, tokens_per_unit, head_dim);
- sparse MAE keeps whole units, so deleting masked units is an index on the unit dimension.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from .config import BlockSpec, ModelConfig, PoolSpec

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def raster_to_units(x: torch.Tensor, grid: tuple[int, ...], unit: tuple[int, ...]) -> torch.Tensor:
    """(B, N, C) raster over `grid` -> (B, N, C) unit-major with units of size `unit`.

    The one unit-major permutation of the package (tokens, MAE targets and patches all use it);
    x may also be (B, *grid, C). Units are in raster order over grid / unit, tokens in raster
    order inside each unit."""
    B, C, D = x.shape[0], x.shape[-1], len(grid)
    x = x.reshape(B, *[v for g, u in zip(grid, unit) for v in (g // u, u)], C)
    perm = [0] + [1 + 2 * d for d in range(D)] + [2 + 2 * d for d in range(D)] + [1 + 2 * D]
    return x.permute(perm).reshape(B, -1, C)


def units_to_raster(x: torch.Tensor, units: tuple[int, ...], unit: tuple[int, ...]) -> torch.Tensor:
    """Inverse of raster_to_units: (B, N, C) unit-major (x may be (B, U, P, C)) -> (B, N, C) raster;
    `units` is the unit count per dim."""
    B, C, D = x.shape[0], x.shape[-1], len(units)
    x = x.reshape(B, *units, *unit, C)
    perm = [0] + [p for d in range(D) for p in (1 + d, 1 + D + d)] + [1 + 2 * D]
    return x.permute(perm).reshape(B, -1, C)


def pool_tokens(
    x: torch.Tensor,
    unit: tuple[int, ...],
    spec: PoolSpec | None,
    conv: nn.Module | None = None,
    norm: nn.Module | None = None,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Pools (*lead, N, C) unit-major tokens inside each unit.

    With a conv this is the conv (then `norm`); otherwise spec.op's max or avg pool. Overlapping
    pools are padded inside every unit, as if each unit were its own image (separate-and-pad);
    with U = 1 that is ordinary pooling. An avg pool averages only the tokens its window covers
    (count_include_pad=False), dense or inside units: padding is not data, so a border token is
    the mean of its real neighbours, and the unit-wise pool needs no padding value at all.
    Returns the pooled tokens (*lead, U * prod(unit'), C) and the new unit size.
    """
    if spec is None:
        return x, unit
    lead, (N, C) = x.shape[:-2], x.shape[-2:]
    U = N // math.prod(unit)
    if conv is None and spec.is_reshape and all(u % s == 0 for u, s in zip(unit, spec.stride)):
        # Split every unit dim into (u // s, s) and reduce the s axes elementwise over strided
        # slices: no copy, and C stays contiguous. (One amax over the interleaved s axes gives the
        # same values but was 58x slower on CPU: 12.8 vs 0.22 ms for 64x16x16x64.)
        shape = [*lead, U]
        for u, s in zip(unit, spec.stride):
            shape += [u // s, s]
        y = x.view(*shape, C)
        reduce = torch.add if spec.op == "avg" else torch.maximum
        for d in reversed(range(len(unit))):
            axis = len(lead) + 2 + 2 * d
            y = functools.reduce(reduce, y.unbind(axis))
        if spec.op == "avg":
            y = y / math.prod(spec.stride)
        new_unit = tuple(u // s for u, s in zip(unit, spec.stride))
        return y.reshape(*lead, -1, C), new_unit
    # (L*U, *unit, C) -> channels-first view (memory stays channels-last, which conv accepts).
    y = x.reshape(-1, *unit, C).movedim(-1, 1)
    if conv is not None:
        y = _conv_in_units(conv, y)
    elif spec.op == "avg":
        y = _avg_pool_real_tokens(y, spec)
    elif spec.zero_pad and any(spec.padding):
        # Separate-and-pad as the paper describes it: each unit padded with zeros, so a border
        # token pools to max(0, ...) (the "relu on every feature map" of row b).
        y = F.pad(y, [p for p in reversed(spec.padding) for _ in (0, 1)])
        y = _MAXPOOL[len(unit)](y, spec.kernel, spec.stride, 0)
    else:
        y = _MAXPOOL[len(unit)](y, spec.kernel, spec.stride, spec.padding)
    new_unit = tuple(y.shape[2:])
    y = y.movedim(1, -1).reshape(*lead, U * math.prod(new_unit), C)
    if norm is not None:
        y = norm(y)
    return y, new_unit


def _avg_pool_real_tokens(y: torch.Tensor, spec: PoolSpec) -> torch.Tensor:
    """F.avg_pool with count_include_pad=False for y: (L*U, C, *unit), as (window sum) / (real
    tokens in the window): avg_pool3d refuses a unit smaller than the kernel even when padding
    covers it (a video unit is 1 frame, a late stage's unit 1x1x1), so pad explicitly and divide
    by the same pool of ones."""
    D = y.dim() - 2
    if not any(spec.padding):
        return _AVGPOOL[D](y, spec.kernel, spec.stride)
    pad = [p for p in reversed(spec.padding) for _ in (0, 1)]
    mean_with_zeros = _AVGPOOL[D](F.pad(y, pad), spec.kernel, spec.stride)
    ones = F.pad(y.new_ones(1, 1, *y.shape[2:]), pad)
    return mean_with_zeros / _AVGPOOL[D](ones, spec.kernel, spec.stride)


def _conv_in_units(conv: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """conv(y) for y: (L*U, C, *unit), computed without the taps that only ever see padding.

    Where a unit is 1 token wide in a dim (video units are 1 frame; late stages shrink units to
    1x1) and the kernel's centre lands on it, only that one tap reads data: the others multiply
    zero padding. Narrowing the kernel to it gives the same output and gradients (the dropped
    taps' gradients are exactly zero) and cuts the padded input 3x per such dim: separate-and-pad
    conv pooling of video row a was 80% of its step time on CPU, 2.8x mvitv2's."""
    unit = y.shape[2:]
    weight, stride, padding = conv.weight, list(conv.stride), list(conv.padding)
    for d, (u, k, s, p) in enumerate(zip(unit, conv.kernel_size, conv.stride, conv.padding)):
        one_output = (1 + 2 * p - k) // s == 0 and p < k and conv.dilation[d] == 1
        if u == 1 and k > 1 and one_output:  # its one output reads the data through tap p
            weight = weight.narrow(2 + d, p, 1)
            stride[d], padding[d] = 1, 0
    if weight is conv.weight:
        return conv(y)
    conv_nd = (F.conv1d, F.conv2d, F.conv3d)[y.dim() - 3]
    return conv_nd(y, weight, conv.bias, stride, padding, conv.dilation, conv.groups)


def rel_pos_bias(
    q: torch.Tensor, q_grid: tuple[int, ...], k_grid: tuple[int, ...], tables: list[torch.Tensor]
) -> torch.Tensor:
    """MViTv2's decomposed relative position bias, N-dimensional.

    q: (B, heads, Nq, hd) in raster order over q_grid. tables[d]: (2 * max(q, k) - 1, hd).
    Returns (B, heads, Nq, Nk): sum over dims of q . R_d[dist_d(q, k)].
    """
    B, H, _, hd = q.shape
    D = len(q_grid)
    rq = q.reshape(B, H, *q_grid, hd)
    bias = None
    letters = "tuvw"[:D]
    for d in range(D):
        qs, ks = q_grid[d], k_grid[d]
        q_ratio, k_ratio = max(ks / qs, 1.0), max(qs / ks, 1.0)
        dist = (
            torch.arange(qs, device=q.device).unsqueeze(-1) * q_ratio
            - torch.arange(ks, device=q.device).unsqueeze(0) * k_ratio
            + (ks - 1) * k_ratio
        )
        R = tables[d][dist.long()]  # (qs, ks, hd)
        rel = torch.einsum(f"bh{letters}c,{letters[d]}kc->bh{letters}k", rq, R)
        shape = [B, H, *q_grid] + [1] * D
        shape[2 + D + d] = ks
        rel = rel.reshape(shape)
        bias = rel if bias is None else bias + rel
    return bias.reshape(B, H, math.prod(q_grid), math.prod(k_grid))


class Attention(nn.Module):
    """Multi-head attention with optional Q / KV pooling, relative positions, pooled-Q residual
    and mask unit attention: MViTv2's MultiScaleAttention and Hiera's MaskUnitAttention in one.
    """

    def __init__(self, spec: BlockSpec, cfg: ModelConfig):
        super().__init__()
        self.heads, self.attn_dim = spec.heads, spec.attn_dim
        self.head_dim = spec.attn_dim // spec.heads
        self.q_spec, self.kv_spec = spec.q_pool, spec.kv_pool
        self.mask_unit = spec.attention == "mask_unit"
        self.residual = cfg.attn_residual
        self.qkv = nn.Linear(spec.dim_in, 3 * spec.attn_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(spec.attn_dim, spec.attn_dim)
        dormant = dict(spec.dormant)
        for name, ps in (("q", self.q_spec), ("k", self.kv_spec), ("v", self.kv_spec)):
            # MViTv2: a depthwise conv over head_dim channels, shared by the heads, then a LayerNorm.
            conv = norm = None
            frozen = ps is None and name in dormant  # built for the state dict, never applied
            ps = dormant[name] if frozen else ps
            if ps is not None and ps.op == "conv":
                hd = self.head_dim
                conv = _CONV[cfg.ndim](hd, hd, ps.kernel, ps.stride, ps.padding, groups=hd, bias=False)
                norm = nn.LayerNorm(hd, eps=cfg.norm_eps)
                if frozen:  # no gradient: DDP and the optimizer skip them, the state dict keeps them
                    conv.requires_grad_(False)
                    norm.requires_grad_(False)
            setattr(self, f"pool_{name}", conv)
            setattr(self, f"norm_{name}", norm)
        self.rel_axes = ()
        if spec.rel_pos_sizes is not None:
            self.rel_axes = ("t", "h", "w")[-cfg.ndim :]
            for axis, n in zip(self.rel_axes, spec.rel_pos_sizes):
                self.register_parameter(f"rel_pos_{axis}", nn.Parameter(torch.zeros(n, self.head_dim)))

    def forward(self, x: torch.Tensor, unit: tuple[int, ...], units: tuple[int, ...] | None):
        """x: (B, N, dim_in) unit-major; units: the grid of units (None when U = 1 raster).

        Returns (B, Nq, attn_dim) and the unit size after Q pooling.
        """
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, hd)
        q, q_unit = pool_tokens(q, unit, self.q_spec, self.pool_q, self.norm_q)
        k, k_unit = pool_tokens(k, unit, self.kv_spec, self.pool_k, self.norm_k)
        v, _ = pool_tokens(v, unit, self.kv_spec, self.pool_v, self.norm_v)
        if self.mask_unit:
            # Local attention inside each mask unit: the window follows the unit's current size.
            U = N // math.prod(unit)
            q = q.reshape(B, self.heads, U, -1, self.head_dim)
            k = k.reshape(B, self.heads, U, -1, self.head_dim)
            v = v.reshape(B, self.heads, U, -1, self.head_dim)
            out = F.scaled_dot_product_attention(q, k, v)
            if self.residual:
                out = out + q
            out = out.permute(0, 2, 3, 1, 4).reshape(B, -1, self.attn_dim)
        else:
            bias = self._rel_bias(q, q_unit, k_unit, units) if self.rel_axes else None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            if self.residual:
                out = out + q
            out = out.transpose(1, 2).reshape(B, -1, self.attn_dim)
        return self.proj(out), q_unit

    def _rel_bias(self, q, q_unit, k_unit, units):
        tables = [getattr(self, f"rel_pos_{a}") for a in self.rel_axes]
        if units is None:  # raster layout: the unit is the whole grid
            return rel_pos_bias(q, q_unit, k_unit, tables)
        # Unit-major layout (separate-and-pad on a relative-position row): compute in raster
        # order, then permute rows and columns into unit-major order.
        q_grid = tuple(n * u for n, u in zip(units, q_unit))
        k_grid = tuple(n * u for n, u in zip(units, k_unit))
        qi = _unit_order(units, q_unit, q.device)
        ki = _unit_order(units, k_unit, q.device)
        q_raster = torch.empty_like(q)
        q_raster[:, :, qi] = q
        bias = rel_pos_bias(q_raster, q_grid, k_grid, tables)
        return bias[:, :, qi][:, :, :, ki]


def _unit_order(units, unit, device) -> torch.Tensor:
    """Raster index of each token in unit-major order."""
    n = math.prod(units) * math.prod(unit)
    idx = torch.arange(n, device=device, dtype=torch.float32).view(1, n, 1)
    grid = tuple(a * b for a, b in zip(units, unit))
    return raster_to_units(idx, grid, unit).view(-1).long()


class Block(nn.Module):
    """Pre-norm transformer block; at a stage transition it also pools the skip path and, where
    channels double, projects it (in the attention: MViTv2-T/S/B and Hiera; in the MLP:
    MViTv2-L)."""

    def __init__(self, spec: BlockSpec, cfg: ModelConfig):
        super().__init__()
        self.skip_spec = spec.skip_pool
        self.norm1 = nn.LayerNorm(spec.dim_in, eps=cfg.norm_eps)
        self.proj = nn.Linear(spec.dim_in, spec.dim_out) if spec.proj == "attn" else None
        self.attn = Attention(spec, cfg)
        self.norm2 = nn.LayerNorm(spec.attn_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(spec.attn_dim, int(spec.attn_dim * cfg.mlp_ratio), out_features=spec.dim_out)
        self.proj_mlp = nn.Linear(spec.attn_dim, spec.dim_out) if spec.proj == "mlp" else None
        self.drop_path = DropPath(spec.drop_path) if spec.drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, unit: tuple[int, ...], units: tuple[int, ...] | None):
        """x: (B, N, dim_in) -> (B, N', dim_out), unit size after pooling."""
        x_norm = self.norm1(x)
        # As in both references: the shortcut is the un-normalised input unless it is projected.
        shortcut = x if self.proj is None else self.proj(x_norm)
        shortcut, _ = pool_tokens(shortcut, unit, self.skip_spec)
        out, unit = self.attn(x_norm, unit, units)
        x = shortcut + self.drop_path(out)
        x_norm = self.norm2(x)
        shortcut = x if self.proj_mlp is None else self.proj_mlp(x_norm)
        return shortcut + self.drop_path(self.mlp(x_norm)), unit
