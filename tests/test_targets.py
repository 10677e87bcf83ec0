"""MAE targets: per-patch pixel normalisation, MaskFeat HOG against hand / numpy computations."""

import math

import numpy as np
import pytest
import torch

from models.targets import hog_cells, hog_target, patch_stats, patchify, pixel_target, unpatchify


def test_patchify_layout_and_inverse():
    x = torch.randn(2, 3, 16, 24)
    p = patchify(x, (8, 8))
    assert p.shape == (2, 2 * 3, 64 * 3)
    # patch 4 = row 1, col 1 in raster order; flattened as (h, w, C)
    assert torch.equal(p[1, 4], x[1, :, 8:16, 8:16].permute(1, 2, 0).reshape(-1))
    assert torch.equal(unpatchify(p, (8, 8), (3, 16, 24)), x)
    v = torch.randn(2, 3, 4, 16, 16)
    pv = patchify(v, (2, 8, 8))
    assert pv.shape == (2, 2 * 2 * 2, 2 * 64 * 3)
    assert torch.equal(pv[0, 5], v[0, :, 2:4, 0:8, 8:16].permute(1, 2, 3, 0).reshape(-1))
    assert torch.equal(unpatchify(pv, (2, 8, 8), (3, 4, 16, 16)), v)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(x, (5, 8))


def test_pixel_target_normalised_per_patch():
    x = torch.randn(2, 3, 32, 32) * 3 + 5
    t = pixel_target(x, (8, 8))
    assert t.shape == (2, 16, 8 * 8 * 3)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 16), atol=1e-3)  # MAE: unbiased var, eps 1e-6
    raw = pixel_target(x, (8, 8), norm=False)
    mean, std = patch_stats(x, (8, 8))
    assert torch.allclose(t * std + mean, raw, atol=1e-4)
    # a constant patch stays finite (eps)
    assert torch.isfinite(pixel_target(torch.ones(1, 3, 8, 8), (8, 8))).all()


def test_target_shapes_video():
    v = torch.randn(2, 3, 8, 32, 32)
    assert pixel_target(v, (2, 16, 16)).shape == (2, 4 * 2 * 2, 16 * 16 * 3)  # official: 768 per token
    assert hog_target(v, (2, 16, 16)).shape == (2, 4 * 2 * 2, 3 * 9 * 4)
    assert hog_target(torch.randn(1, 3, 224, 224), (16, 16)).shape == (1, 196, 108)  # 3 x 9 x (16/8)^2


def test_video_targets_use_the_first_frame_of_each_token():
    v = torch.randn(1, 3, 4, 16, 16)
    w = v.clone()
    w[:, :, 1] += torch.randn(1, 3, 16, 16)  # second frame of the first 2-frame token
    assert torch.equal(hog_target(v, (2, 16, 16)), hog_target(w, (2, 16, 16)))
    assert torch.equal(pixel_target(v, (2, 16, 16)), pixel_target(w, (2, 16, 16)))
    w[:, :, 2] += 1.0  # first frame of the second token
    assert not torch.equal(pixel_target(v, (2, 16, 16)), pixel_target(w, (2, 16, 16)))
    assert torch.allclose(hog_target(v, (2, 16, 16))[:, 1], hog_target(v[:, :, 2], (16, 16))[:, 0])


def test_hog_vertical_and_horizontal_edges_by_hand():
    # Vertical step (cols 0-3 = 0, cols 4-7 = 1). Sobel gx = left - right, weighted 1-2-1:
    # gx = -4 at cols 3 and 4 (16 pixels), 0 elsewhere (reflect pad keeps the borders flat); gy = 0.
    # atan2(-4, 0) = -pi/2 -> -4.5 -> floor -5 -> mod 9 = bin 4, holding 16 * 4 = 64 -> L2 norm 1.
    img = torch.zeros(1, 1, 8, 8)
    img[..., 4:] = 1.0
    h = hog_cells(img)
    assert h.shape == (1, 1, 9, 1, 1)
    assert torch.allclose(h[0, 0, :, 0, 0], torch.eye(9)[4])
    # Horizontal step: gy = -4, gx = 0; atan2(0, -4) = pi -> 9 -> mod 9 = bin 0.
    h = hog_cells(img.transpose(2, 3))
    assert torch.allclose(h[0, 0, :, 0, 0], torch.eye(9)[0])
    # Ramp x = i + j. Interior 6x6: gx = gy = -8, |g| = 8*sqrt(2), atan2(-8, -8) = -3pi/4 -> -6.75
    # -> bin 2. Border cols (12 px, corners aside): reflect makes gx = 0, gy = -8 -> bin 0, |g| = 8.
    # Border rows (12 px): gy = 0, gx = -8 -> bin 4, |g| = 8. Corners: zero gradient.
    ramp = (torch.arange(8.0)[:, None] + torch.arange(8.0)[None, :]).view(1, 1, 8, 8)
    expect = torch.zeros(9)
    expect[0], expect[4], expect[2] = 12 * 8, 12 * 8, 36 * 8 * math.sqrt(2)
    assert torch.allclose(hog_cells(ramp)[0, 0, :, 0, 0], expect / expect.norm(), atol=1e-6)


def test_hog_is_fp32_under_bf16_autocast():
    img = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = hog_cells(img)
    assert h.dtype == torch.float32 and torch.equal(h, hog_cells(img))


def _numpy_hog(img: np.ndarray, cell: int = 8, nbins: int = 9) -> np.ndarray:
    """Independent loop implementation: img (C, H, W) -> (C, nbins, H/cell, W/cell)."""
    C, H, W = img.shape
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    out = np.zeros((C, nbins, H // cell, W // cell))
    for c in range(C):
        for i in range(H):
            for j in range(W):
                win = p[c, i : i + 3, j : j + 3]
                gx = (win[:, 0] - win[:, 2]) @ np.array([1.0, 2.0, 1.0])
                gy = (win[0, :] - win[2, :]) @ np.array([1.0, 2.0, 1.0])
                b = math.floor(math.atan2(gx, gy) / math.pi * nbins) % nbins
                out[c, b, i // cell, j // cell] += math.hypot(gx, gy)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_hog_matches_numpy_reference_and_token_layout():
    torch.manual_seed(0)
    img = torch.randn(1, 3, 16, 32, dtype=torch.float64).float()
    ref = _numpy_hog(img[0].double().numpy())
    got = hog_cells(img)[0].double().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # per 16 px token: its 2x2 cells, flattened as (C * nbins, cell_h, cell_w)
    t = hog_target(img, (16, 16))
    assert t.shape == (1, 2, 3 * 9 * 4)
    expect = torch.from_numpy(ref[:, :, 0:2, 2:4]).reshape(-1).float()
    assert torch.allclose(t[0, 1], expect, atol=1e-5)
    with pytest.raises(ValueError, match="HOG cells"):
        hog_target(img, (4, 4))
