"""MAE prediction targets: per-patch normalised pixels and MaskFeat HOG.

Every target is laid out per *prediction patch*: the pixels under one token of the MAE
decoder's output grid (the last encoder stage with its final q-pool removed). ``patch`` gives
that extent in pixels per dim: ``(ph, pw)`` for images, ``(pt, ph, pw)`` for video. Outputs are
``(B, N, D)`` with the N patches in raster order over the patch grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .layers import raster_to_units, units_to_raster


def patchify(imgs: torch.Tensor, patch: tuple[int, ...]) -> torch.Tensor:
    """(B, C, *S) -> (B, prod(S / patch), prod(patch) * C), each patch flattened as (*patch, C).

    Works for images (S = H, W) and video (S = T, H, W); patches in raster order. A patch is a
    "unit" of the package's unit-major layout (models.layers.raster_to_units).
    """
    B, C, *S = imgs.shape
    if len(S) != len(patch) or any(s % p for s, p in zip(S, patch)):
        raise ValueError(f"input spatial shape {tuple(S)} is not divisible into patches {tuple(patch)}")
    grid = [s // p for s, p in zip(S, patch)]
    return raster_to_units(imgs.movedim(1, -1), tuple(S), patch).reshape(B, math.prod(grid), -1)


def unpatchify(x: torch.Tensor, patch: tuple[int, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, prod(patch) * C) -> (B, C, *S) with ``shape = (C, *S)``."""
    C, *S = shape
    grid = tuple(s // p for s, p in zip(S, patch))
    return units_to_raster(x.reshape(x.shape[0], -1, C), grid, patch).view(x.shape[0], *S, C).movedim(-1, 1)


def token_frames(imgs: torch.Tensor, patch: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The pixels a token's target is made of, and their patch.

    Images pass through. Video (B, C, T, H, W) keeps the first frame of each ``patch[0]``-frame
    token, as the official ``get_pixel_label_3d`` (``imgs[:, :, ::patch_stride[0]]``): returns
    (B, C, T / patch[0], H, W) and the patch (1, ph, pw).
    """
    if imgs.dim() != 5:
        return imgs, tuple(patch)
    return imgs[:, :, :: patch[0]], (1, *patch[1:])


def patch_stats(imgs: torch.Tensor, patch: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and std as used by MAE's norm_pix_loss (unbiased var, eps 1e-6): each (B, N, 1).

    Video: over the pixels of the pixel target (the first frame of each token).
    """
    x = patchify(*token_frames(imgs, patch))
    return x.mean(-1, keepdim=True), (x.var(-1, keepdim=True) + 1e-6) ** 0.5


def pixel_target(imgs: torch.Tensor, patch: tuple[int, ...], norm: bool = True) -> torch.Tensor:
    """Pixel target (B, N, D), normalised per patch when ``norm`` (MAE norm_pix_loss).

    Images: D = prod(patch) * C. Video: the first frame of each token only, as the official
    Hiera MAE (16x16x3 = 768 values per 2x16x16 token), flattened as (1, ph, pw, C).
    """
    x = patchify(*token_frames(imgs, patch))
    if norm:
        mean, std = x.mean(-1, keepdim=True), (x.var(-1, keepdim=True) + 1e-6) ** 0.5
        x = (x - mean) / std
    return x


def hog_cells(imgs: torch.Tensor, cell: int = 8, nbins: int = 9) -> torch.Tensor:
    """HOG histograms per cell, SlowFast's HOGLayerC (MaskFeat) without the Gaussian window.

    imgs: (B, C, H, W), normalised RGB. Returns (B, C, nbins, H / cell, W / cell), each
    (channel, cell) histogram L2-normalised over its bins.
    """
    B, C, H, W = imgs.shape
    if H % cell or W % cell:
        raise ValueError(f"image size {(H, W)} is not divisible into {cell}x{cell} HOG cells")
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=imgs.device)
    wx = kx.expand(C, 1, 3, 3)
    wy = kx.t().expand(C, 1, 3, 3)
    # fp32 always: bin edges are sensitive, and the target must not depend on autocast (under
    # bf16 autocast the convs gave bf16 gradients, and scatter_add_ into fp32 bins failed).
    x = F.pad(imgs.float(), (1, 1, 1, 1), mode="reflect")
    with torch.autocast(imgs.device.type, enabled=False):
        gx = F.conv2d(x, wx, groups=C)
        gy = F.conv2d(x, wy, groups=C)
    mag = torch.sqrt(gx**2 + gy**2)
    # atan2(gx, gy) in [-pi, pi] -> [-9, 9]; mod 9 folds opposite directions (unsigned gradients).
    bins = torch.floor(torch.atan2(gx, gy) / math.pi * nbins).long() % nbins
    hist = torch.zeros(B, C, nbins, H, W, device=imgs.device)
    hist.scatter_add_(2, bins.unsqueeze(2), mag.unsqueeze(2))
    hist = hist.reshape(B, C, nbins, H // cell, cell, W // cell, cell).sum((4, 6))
    return F.normalize(hist, p=2, dim=2)


def hog_target(imgs: torch.Tensor, patch: tuple[int, ...], cell: int = 8, nbins: int = 9) -> torch.Tensor:
    """MaskFeat HOG target per prediction patch: (B, N, C * nbins * prod(patch[-2:] / cell)).

    Each patch's vector is its cells' histograms flattened as (C * nbins, cells_h, cells_w), the
    SlowFast order. Video (B, C, T, H, W): the HOG of the first frame of each ``patch[0]``-frame
    token stands for the whole token.
    """
    ph, pw = patch[-2:]
    if ph % cell or pw % cell:
        raise ValueError(f"prediction patch {(ph, pw)} px is not divisible into {cell}x{cell} HOG cells")
    if imgs.dim() == 5:
        first, _ = token_frames(imgs, patch)  # (B, C, T', H, W)
        B, C, T, H, W = first.shape
        h = hog_cells(first.transpose(1, 2).reshape(-1, C, H, W), cell, nbins).flatten(1, 2)
        # back to a (B, C*nbins, T', H/cell, W/cell) volume; one "cell" in time per token
        h = h.reshape(B, T, *h.shape[1:]).transpose(1, 2)
        return _flatten_cells(patchify(h, (1, ph // cell, pw // cell)), h.shape[1])
    h = hog_cells(imgs, cell, nbins).flatten(1, 2)  # (B, C*nbins, H/cell, W/cell)
    return _flatten_cells(patchify(h, (ph // cell, pw // cell)), h.shape[1])


def _flatten_cells(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, N, cells * channels) in (cells, channels) order -> (B, N, channels * cells) order."""
    B, N, D = x.shape
    return x.reshape(B, N, D // channels, channels).transpose(2, 3).reshape(B, N, D)
