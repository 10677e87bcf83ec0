"""Pieces of the MAE head: multi-scale fusion of encoder stages and the transformer decoder.

Shapes use U for mask units (all of them, or only the visible ones), P for prediction tokens
per unit (``prod(last_unit)``), and unit-major token order: unit first (raster order over the
mask-unit grid), then the unit's own tokens in raster order.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class MultiScaleFusion(nn.Module):
    """Sum the stages' features per mask unit at the last stage's resolution (Table 3a).

    As in the official Hiera MAE: every stage whose unit size differs from the last stage's
    (the q-pooled ones) gets a conv with kernel = stride = (its unit size / last unit size),
    applied inside each unit so no unit ever reads another (sparse-safe); stages already at the
    last resolution are skipped, except the last stage itself, which is added as is. With
    ``multi_scale=False`` only the last stage is used.

    Input: one tensor per stage, (B, U, *stage_unit_sizes[s], stage_dims[s]).
    Output: (B, U, P, stage_dims[-1]).
    """

    def __init__(self, stage_dims: list[int], stage_unit_sizes: list[tuple], multi_scale: bool = True):
        super().__init__()
        last = tuple(stage_unit_sizes[-1])
        self.last_unit = last
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(last)]
        self.stages: list[int] = []
        self.heads = nn.ModuleList()
        if multi_scale:
            for s, (dim, unit) in enumerate(zip(stage_dims[:-1], stage_unit_sizes[:-1])):
                if tuple(unit) == last:
                    continue
                kernel = tuple(u // v for u, v in zip(unit, last))
                self.stages.append(s)
                self.heads.append(conv(dim, stage_dims[-1], kernel_size=kernel, stride=kernel))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        B, U, C = x.shape[0], x.shape[1], x.shape[-1]
        x = x.reshape(B, U, -1, C)
        for s, head in zip(self.stages, self.heads):
            f = feats[s]
            nd = f.dim() - 3
            # (B, U, *unit, C_s) -> (B*U, C_s, *unit): each unit is its own tiny image
            f = f.reshape(B * U, *f.shape[2:]).permute(0, nd + 1, *range(1, nd + 1))
            f = head(f).flatten(2).transpose(1, 2)  # (B*U, P, C)
            x = x + f.reshape(B, U, -1, C)
        return x


class MAEDecoder(nn.Module):
    """Plain ViT decoder over all prediction tokens (visible + masked), MAE style.

    Input: (B, U_all, P, D) already embedded to the decoder width. Output: (B, U_all, P, out_dim).
    The learned position embedding is per (unit, token) slot, so the unit-major order needs no
    un-windowing (the official code's ``undo_windowing`` only permutes the slots).
    """

    def __init__(self, num_tokens: int, dim: int, depth: int, heads: int, out_dim: int, mlp_ratio=4.0):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        block = partial(Block, dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=LayerNorm)
        self.blocks = nn.Sequential(*[block() for _ in range(depth)])
        self.norm = LayerNorm(dim)
        self.pred = nn.Linear(dim, out_dim)
        trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, U, P, D = x.shape
        x = x.reshape(B, U * P, D) + self.pos_embed
        x = self.pred(self.norm(self.blocks(x)))
        return x.reshape(B, U, P, -1)
