"""Rasterise the synthetic scenes: signed-distance shapes, strokes, backgrounds.

Everything is drawn in continuous image coordinates (x, y in [-1, 1], y pointing down), so a
scene is resolution independent: the same parameters give the same picture at 32 or 64 px.
Shapes are signed distance functions (positive inside) evaluated in the shape's local frame,
where the shape fits in [-1, 1]^2. Edges are anti-aliased by turning the signed distance into a
coverage over one pixel, which keeps thin parts (bars of 2 px) visible at 32 px.
"""

import math

import torch

# Order matters: it is the label order of the builtin image dataset.
SHAPES = ("disc", "ring", "square", "triangle", "cross", "hbars", "vbars", "checker", "ell", "pair")


def grid(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates for an (H, W) image: x, y each (H, W), float64 in (-1, 1)."""
    h, w = size
    y = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    x = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    return x.expand(h, w), y[:, None].expand(h, w)


def _rect(u, v, cx, cy, hx, hy):
    return torch.minimum(hx - (u - cx).abs(), hy - (v - cy).abs())


def _stripes(t, n):
    # n bars of width P/2 across [-1, 1], period P = 2/n, a bar centred in each period.
    p = 2.0 / n
    return p / 4 - (torch.remainder(t + 1, p) - p / 2).abs()


def shape_sdf(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (positive inside) of `shape` at local coordinates u, v (any shape)."""
    if shape == "disc":
        return 0.85 - torch.hypot(u, v)
    if shape == "ring":
        return 0.17 - (torch.hypot(u, v) - 0.72).abs()
    if shape == "square":
        return _rect(u, v, 0, 0, 0.8, 0.8)
    if shape == "triangle":
        # Equilateral, circumradius 1: inside all three half-planes n_k . p <= 1/2 (inradius).
        sd = None
        for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            d = 0.5 - (u * math.cos(a) + v * math.sin(a))
            sd = d if sd is None else torch.minimum(sd, d)
        return sd
    if shape == "cross":
        return torch.maximum(_rect(u, v, 0, 0, 0.22, 0.95), _rect(u, v, 0, 0, 0.95, 0.22))
    if shape in ("hbars", "vbars"):
        t = v if shape == "hbars" else u
        return torch.minimum(_stripes(t, 3), _rect(u, v, 0, 0, 0.9, 0.95))
    if shape == "checker":
        # 4x4 cells; sin*sin / (2 pi) is ~ the distance to the cell border near the border.
        c = torch.sin(2 * math.pi * u) * torch.sin(2 * math.pi * v) / (2 * math.pi)
        return torch.minimum(c, _rect(u, v, 0, 0, 1.0, 1.0))
    if shape == "ell":
        return torch.maximum(_rect(u, v, -0.6, 0, 0.3, 0.9), _rect(u, v, 0, 0.6, 0.9, 0.3))
    if shape == "pair":
        return torch.maximum(0.4 - torch.hypot(u - 0.55, v), 0.4 - torch.hypot(u + 0.55, v))
    raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")


def coverage(sd: torch.Tensor, pixel: float) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] from a signed distance in image units."""
    return (0.5 + sd / pixel).clamp(0, 1)


def shape_alpha(x, y, shape: str, center, angle: float, scale: float, wrap: bool, pixel: float):
    """Coverage (H, W) of `shape` centred at `center` (image units), rotated by `angle` (rad),
    half-size `scale` (image units). wrap=True draws on a torus, so an object leaving one side
    re-enters on the other (the video dataset relies on this to keep every frame's position
    uniformly distributed)."""
    dx, dy = x - float(center[0]), y - float(center[1])
    if wrap:
        dx, dy = torch.remainder(dx + 1, 2) - 1, torch.remainder(dy + 1, 2) - 1
    c, s = math.cos(angle), math.sin(angle)
    u, v = (c * dx + s * dy) / scale, (-s * dx + c * dy) / scale
    return coverage(shape_sdf(shape, u, v) * scale, pixel)


def stroke_alpha(x, y, p0, p1, width: float, pixel: float):
    """Coverage (H, W) of a line segment p0 -> p1 of the given width (image units)."""
    ax, ay, bx, by = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    ex, ey = bx - ax, by - ay
    t = (((x - ax) * ex + (y - ay) * ey) / max(ex * ex + ey * ey, 1e-12)).clamp(0, 1)
    d = torch.hypot(x - ax - t * ex, y - ay - t * ey)
    return coverage(width / 2 - d, pixel)


def background(x, y, base, grad, angle: float) -> torch.Tensor:
    """(3, H, W) base colour plus a linear colour gradient along `angle`."""
    ramp = (math.cos(angle) * x + math.sin(angle) * y) / 2
    return base.view(3, 1, 1) + grad.view(3, 1, 1) * ramp


def paint(img: torch.Tensor, alpha: torch.Tensor, color) -> torch.Tensor:
    """Alpha-composite a flat `color` (3,) over img (3, H, W) with coverage alpha (H, W)."""
    return img * (1 - alpha) + color.view(3, 1, 1) * alpha


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8. Quantising makes items bit-identical across machines even
    if transcendental functions differ in the last ulp, and matches real data (uint8 pixels)."""
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)
