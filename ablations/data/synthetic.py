"""Shared pieces of the builtin synthetic datasets: per-item seeding and the cluttered scene.

A scene is a noisy background with a colour gradient, distractor strokes (some under, some over
the object) and one object whose colour contrasts with the background. Both builtin datasets
draw a scene; what the label controls differs (the object's shape for images, its motion for
video), so everything the label does not control comes from here with the same distribution.
"""

import hashlib
import math

import torch

from . import render

SPLITS = ("train", "val")
MAX_STROKES = 6


def item_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, split, index): item i is the same on every call and
    every machine, and train/val draw from disjoint streams. blake2b (not Python's hash(), which
    is salted per process) mixes the three into one 63-bit seed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    digest = hashlib.blake2b(f"{seed}:{split}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class Draws:
    """Uniform numbers pulled in order from one fixed-length draw. Every item consumes the same
    amount of the generator whatever its label, so label-independent parts of a scene (and the
    noise drawn afterwards) are identical across labels for the same seed."""

    def __init__(self, gen: torch.Generator, n: int = 96):
        self._u = torch.rand(n, generator=gen, dtype=torch.float64).tolist()
        self._i = 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        u = self._u[self._i]
        self._i += 1
        return lo + (hi - lo) * u

    def vec(self, n: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
        return torch.tensor([self(lo, hi) for _ in range(n)], dtype=torch.float64)


def contrast_color(bg: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Object colour (3,): each channel moves a fraction `frac` (in [0.5, 1]) of the way from the
    background towards the far end of [0, 1], so contrast is >= 0.25 per channel and never clips."""
    return torch.where(bg > 0.5, bg - frac * bg, bg + frac * (1 - bg))


class Scene:
    """Label-independent scene parameters, drawn from `d` in a fixed order.

    Fields: bg_base (3,), bg_grad (3,), bg_angle, strokes (list of (p0, p1, width_px, color)),
    noise_std, color_frac (3,) in [0.5, 1] for the object colour (see contrast_color).
    """

    def __init__(self, d: Draws):
        self.bg_base = d.vec(3, 0.15, 0.85)
        self.bg_grad = d.vec(3, -0.3, 0.3)
        self.bg_angle = d(0, 2 * math.pi)
        n_strokes = 3 + int(d(0, 3.999))
        self.strokes = []
        for i in range(MAX_STROKES):
            x0, y0, a, length, width = d(-1, 1), d(-1, 1), d(0, 2 * math.pi), d(0.3, 1.0), d(1.0, 1.8)
            color = d.vec(3)
            if i < n_strokes:
                p1 = (x0 + length * math.cos(a), y0 + length * math.sin(a))
                self.strokes.append(((x0, y0), p1, width, color))
        self.noise_std = d(0.03, 0.09)
        self.color_frac = d.vec(3, 0.5, 1.0)

    @property
    def object_color(self) -> torch.Tensor:
        return contrast_color(self.bg_base, self.color_frac)

    def canvas(self, size) -> tuple[torch.Tensor, list]:
        """The static layers at (H, W): background with the strokes under the object (3, H, W), and
        the strokes over it as [(alpha (H, W), color (3,))]. Strokes alternate under / over so the
        object is partly occluded, as in clutter. Computed once per clip for video."""
        x, y = render.grid(size)
        pixel = 2.0 / size[1]
        img = render.background(x, y, self.bg_base, self.bg_grad, self.bg_angle)
        strokes = [(render.stroke_alpha(x, y, p0, p1, w * pixel, pixel), c) for p0, p1, w, c in self.strokes]
        for alpha, color in strokes[0::2]:
            img = render.paint(img, alpha, color)
        return img, strokes[1::2]

    def draw(self, canvas, obj: dict, noise: torch.Tensor, wrap: bool) -> torch.Tensor:
        """One frame, uint8 (3, H, W): the object over canvas[0], then the top strokes, then noise.
        obj: shape, center (2,), angle, scale, color (3,); noise: (3, H, W) standard normal."""
        img, over = canvas
        size = img.shape[-2:]
        x, y = render.grid(size)
        a = render.shape_alpha(
            x, y, obj["shape"], obj["center"], obj["angle"], obj["scale"], wrap=wrap, pixel=2.0 / size[1]
        )
        img = render.paint(img, a, obj["color"])
        for alpha, color in over:
            img = render.paint(img, alpha, color)
        return render.to_uint8(img + self.noise_std * noise)
