"""HierarchicalViT: one configurable model from MViTv2 (row "mvitv2") to Hiera (row "f").

Images and video share one code path: every spatial quantity is a tuple, (H, W) or (T, H, W).
See models/layers.py for the unit-major token layout that makes every row cheap.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import ModelConfig, resolve_blocks
from .layers import _CONV, Block, raster_to_units


class HierarchicalViT(nn.Module):
    """MViTv2 / Hiera / every Table 1 row in between. Returns logits, never probabilities."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.specs = resolve_blocks(cfg)
        D = cfg.ndim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = _CONV[D](
            cfg.in_chans, cfg.embed_dim, cfg.patch_kernel, cfg.patch_stride, cfg.patch_padding
        )
        grid = cfg.token_grid
        self.pos_embed = self.pos_embed_spatial = self.pos_embed_temporal = None
        if cfg.position == "absolute":
            if D == 3:  # video: separable spatial + temporal embeddings (Hiera, paper Sec. 4)
                self.pos_embed_spatial = nn.Parameter(torch.zeros(1, grid[1] * grid[2], cfg.embed_dim))
                self.pos_embed_temporal = nn.Parameter(torch.zeros(1, grid[0], cfg.embed_dim))
            else:
                self.pos_embed = nn.Parameter(torch.zeros(1, math.prod(grid), cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(s, cfg) for s in self.specs)
        self.stage_ends = [
            i
            for i, s in enumerate(self.specs)
            if i + 1 == len(self.specs) or self.specs[i + 1].stage != s.stage
        ]
        # Units are needed for sparse input, per-unit pooling and mask unit attention; a dense model
        # with none of them runs in plain raster order (U = 1), as MViTv2 does.
        self.needs_units = cfg.separate_and_pad or any(s.attention == "mask_unit" for s in self.specs)
        self.num_features = self.specs[-1].dim_out
        self.norm = nn.LayerNorm(self.num_features, eps=cfg.norm_eps)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.grad_ckpt_blocks = 0  # activation checkpointing: the first N blocks (set_grad_checkpointing)
        self._init_weights()

    # ------------------------------------------------------------------ geometry
    @property
    def mask_spatial_shape(self) -> tuple[int, ...]:
        return self.cfg.mask_spatial_shape

    @property
    def num_mask_units(self) -> int:
        return math.prod(self.cfg.mask_spatial_shape)

    @property
    def unit_pixels(self) -> tuple[int, ...]:
        return self.cfg.unit_pixels

    @property
    def stage_dims(self) -> list[int]:
        return [self.specs[i].dim_out for i in self.stage_ends]

    @property
    def stage_unit_sizes(self) -> list[tuple[int, ...]]:
        """Tokens per mask unit per dim at each stage output."""
        g0 = self.cfg.token_grid
        return [
            tuple(u * g // g0d for u, g, g0d in zip(self.cfg.mask_unit_size, self.specs[i].out_grid, g0))
            for i in self.stage_ends
        ]

    # ------------------------------------------------------------------ init
    def _init_weights(self):
        # Official Hiera (Hiera._init_weights): trunc-normal(0.02) Linear and Conv1d/2d/3d weights
        # (the patch embed, and the conv pools of rows mvitv2-a), Linear and LayerNorm biases 0.02
        # (conv biases keep PyTorch's init, as there), the head scaled by cfg.head_init_scale
        # (Hiera 1e-3). Used for every row so rows differ only in their flags.
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
                trunc_normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.constant_(m.bias, 0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.02)
        if self.cfg.patch_bias_init == "zero" and self.patch_embed.proj.bias is not None:
            nn.init.zeros_(self.patch_embed.proj.bias)
        for name, p in self.named_parameters():
            if "pos_embed" in name or "rel_pos" in name:
                trunc_normal_(p, std=0.02)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(self.cfg.head_init_scale)
            self.head.bias.data.mul_(self.cfg.head_init_scale)

    # ------------------------------------------------------------------ checks
    def _check(self, x: torch.Tensor, mask: torch.Tensor | None, dense: bool):
        want = (self.cfg.in_chans, *self.cfg.input_size)
        if x.dim() != 2 + self.cfg.ndim or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"expected input of shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}; resize the "
                f"input or build the model with input_size={tuple(x.shape[2:])} (a multiple of "
                f"{self.unit_pixels} px per dim)"
            )
        if mask is None:
            return
        if mask.dtype != torch.bool or mask.shape != (x.shape[0], self.num_mask_units):
            raise ValueError(
                f"mask must be a bool tensor of shape (B, num_mask_units) = ({x.shape[0]}, "
                f"{self.num_mask_units}) (True = visible, units {self.mask_spatial_shape} in raster "
                f"order), got {mask.dtype} {tuple(mask.shape)}"
            )
        if dense:
            return
        if self.cfg.position == "relative":
            raise ValueError(
                "relative position biases cannot be sparse (masked units are deleted, so the "
                "grid they index is gone); use step 'a' or later for sparse MAE, or pass mask_token= "
                "for the dense variant"
            )
        if self.cfg.overlap and not self.cfg.separate_and_pad:
            raise ValueError(
                "overlapping pools without separate_and_pad would read across deleted mask units; "
                "set separate_and_pad=True (rows a-c) or overlap=False (row d onward)"
            )
        kept = mask.sum(1)
        if (kept != kept[0]).any():
            raise ValueError(
                f"every sample must keep the same number of mask units (got {sorted(set(kept.tolist()))}); "
                "sample the mask with a fixed keep count, e.g. argsort of random noise"
            )

    # ------------------------------------------------------------------ forward
    def _embed(self, x, mask, mask_token):
        B = x.shape[0]
        if mask is not None:
            # Zero the pixels of masked units so the 7x7 patch conv cannot see across a unit border.
            pix = mask.view(B, 1, *self.mask_spatial_shape).to(x.dtype)
            x = x * F.interpolate(pix, size=x.shape[2:])
        x = self.patch_embed.proj(x)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)  # (B, N, C) raster
        if mask is not None and mask_token is not None:
            tok = F.interpolate(mask.view(B, 1, *self.mask_spatial_shape).float(), size=grid)
            x = torch.where(tok.flatten(2).transpose(1, 2).bool(), x, mask_token.to(x.dtype))
        if self.pos_embed is not None:
            x = x + self.pos_embed
        elif self.pos_embed_spatial is not None:
            T, S = grid[0], grid[1] * grid[2]
            pos = self.pos_embed_spatial.repeat(1, T, 1) + torch.repeat_interleave(
                self.pos_embed_temporal, S, dim=1
            )
            x = x + pos
        return x, grid

    def forward_features(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_intermediates: bool = False,
        mask_token: torch.Tensor | None = None,
    ):
        """x: (B, C, H, W) or (B, C, T, H, W); mask: (B, num_mask_units) bool, True = visible.

        Sparse: masked units are deleted right after the patch embed and never computed.
        With mask_token (C0,), nothing is deleted: masked units' tokens are replaced (dense
        MaskFeat/SimMIM variant). Returns tokens (B, N, C_last) [, per-stage features, each
        (B, U, *stage_unit_sizes[s], stage_dims[s])].
        """
        dense = mask_token is not None
        self._check(x, mask, dense)
        B = x.shape[0]
        x, grid = self._embed(x, mask, mask_token)
        sparse = mask is not None and not dense
        if self.needs_units or sparse:
            units, unit = self.mask_spatial_shape, self.cfg.mask_unit_size
            x = raster_to_units(x, grid, unit)
            if sparse:
                C, n = x.shape[-1], math.prod(unit)
                x = x.view(B, -1, n * C)[mask].view(B, -1, C)
                units = None  # deleted units leave no grid (relative positions are refused above)
        else:
            units, unit = None, grid  # dense raster order: U = 1, the unit is the whole grid
        feats = []
        ckpt = self.grad_ckpt_blocks if torch.is_grad_enabled() else 0
        for i, blk in enumerate(self.blocks):
            if i < ckpt:
                # Recomputed in backward; the RNG state is restored, so drop path draws the same.
                x, unit = checkpoint(blk, x, unit, units, use_reentrant=False)
            else:
                x, unit = blk(x, unit, units)
            if return_intermediates and i in self.stage_ends:
                feats.append(self._as_units(x, unit, units is None and not sparse))
        return (x, feats) if return_intermediates else x

    def _as_units(self, x: torch.Tensor, unit: tuple[int, ...], raster: bool) -> torch.Tensor:
        """(B, N, C) -> (B, U, *unit_s, C); raster-order tokens are first split into mask units."""
        B, _, C = x.shape
        if raster:
            stage_unit = tuple(g // m for g, m in zip(unit, self.mask_spatial_shape))
            return raster_to_units(x, unit, stage_unit).view(B, -1, *stage_unit, C)
        return x.view(B, -1, *unit, C)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """x: (B, N, C) -> logits (B, num_classes)."""
        if self.cfg.head_order == "norm_mean":
            x = self.norm(x).mean(1)
        else:
            x = self.norm(x.mean(1))
        if pre_logits:
            return x
        return self.head(self.head_drop(x))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask=mask))

    # ------------------------------------------------------------------ training helpers
    def set_grad_checkpointing(self, enable: bool | int = True) -> None:
        """Activation checkpointing (timm's name): True = every block, an int N = the first N
        blocks (the highest-resolution ones hold most activations), False/0 = none."""
        n = len(self.blocks) if enable is True else int(enable or 0)
        if not 0 <= n <= len(self.blocks):
            raise ValueError(
                f"grad checkpointing: N must be in [0, {len(self.blocks)}] blocks, got {enable!r}"
            )
        self.grad_ckpt_blocks = n

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """timm's convention: a fresh head for num_classes (0: none), initialised as at build."""
        if global_pool not in (None, "", "avg"):
            raise ValueError(f"global_pool={global_pool!r}: this model averages its tokens ('avg') only")
        self.cfg = self.cfg.replace(num_classes=num_classes)
        if num_classes <= 0:
            self.head = nn.Identity()
            return
        ref = self.norm.weight
        self.head = nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
        trunc_normal_(self.head.weight, std=0.02)
        nn.init.constant_(self.head.bias, 0.02)
        self.head.weight.data.mul_(self.cfg.head_init_scale)
        self.head.bias.data.mul_(self.cfg.head_init_scale)

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if "pos_embed" in n or "rel_pos" in n}

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm-style groups, so timm.optim.param_groups_layer_decay gives layer-wise lr decay."""
        return dict(stem=r"^pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"{c.modality}, input {c.input_size}, position={c.position}, pool={c.pool}, "
            f"stride1_pools={c.stride1_pools}, overlap={c.overlap}, attn_residual={c.attn_residual}, "
            f"kv={c.kv}, separate_and_pad={c.separate_and_pad}"
        )
