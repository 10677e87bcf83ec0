"""`builtin`: a synthetic image classification set generated on the fly (no files, no download).

The label is the object's shape (render.SHAPES: disc, ring, square, triangle, cross, horizontal
bars, vertical bars, checker, L, pair of dots). Position, size, rotation, colour, background,
distractor strokes and noise are random, so a linear classifier on raw pixels does poorly (the
label lives in spatial structure, not in any pixel's mean) while a small conv net or transformer
learns it. Item i of a split is a pure function of (seed, split, i).
"""

import math

import torch

from . import render
from .common import GeneratedItems, input_hw, opt, single_thread
from .synthetic import Draws, Scene, item_generator
from .transforms import ImageTensorTransform

# Bars and checker are told apart by orientation, so they only get a small rotation; every other
# shape keeps its label under any rotation.
_SMALL_ROTATION = {"hbars", "vbars", "checker"}


def sample_object(label: int, d: Draws, scene: Scene) -> dict:
    """Object parameters for class `label`: shape, center (2,), angle, scale, color (3,)."""
    shape = render.SHAPES[label]
    scale = d(0.35, 0.6)
    center = (d(-1 + scale, 1 - scale), d(-1 + scale, 1 - scale))
    spin = d(-0.3, 0.3) if shape in _SMALL_ROTATION else d(0, 2 * math.pi)
    return {"shape": shape, "center": center, "angle": spin, "scale": scale, "color": scene.object_color}


def render_image(seed: int, split: str, index: int, label: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, H, W): item `index` of `split`, drawn with the given label."""
    with single_thread():
        gen = item_generator(seed, split, index)
        d = Draws(gen)
        scene = Scene(d)
        obj = sample_object(label, d, scene)
        noise = torch.randn((3, *size), generator=gen, dtype=torch.float64)
        return scene.draw(scene.canvas(size), obj, noise, wrap=False)


MAX_CLASSES = len(render.SHAPES)  # data.num_classes may be 2..MAX_CLASSES (checked before any work)


class BuiltinImages(GeneratedItems):
    """Synthetic shapes. Item: (x, y); x = transform(uint8 (3, H, W)), y = index % num_classes
    (exact class balance; shuffle in the sampler)."""

    def __init__(self, num_classes: int, input_size, length: int, split: str, seed: int, transform):
        if not 2 <= num_classes <= len(render.SHAPES):
            raise ValueError(
                f"builtin has at most {len(render.SHAPES)} classes, got num_classes={num_classes}"
            )
        super().__init__(num_classes, length)
        self.size, self.split, self.seed, self.transform = tuple(input_size), split, seed, transform

    def __getitem__(self, index: int):
        y = self.label(index)
        x = self.cache.get(index, lambda: render_image(self.seed, self.split, index, y, self.size))
        x, _ = self.transform(x)
        return x, y


# Mean / std of the pixels / 255, measured over 3000 train items at 32 px: per channel
# 0.499-0.503 / 0.227-0.228. The channels are exchangeable by construction, so one value each.
# tests/test_data_builtin.py::test_normalisation_constants re-checks them.
MEAN = (0.5, 0.5, 0.5)
STD = (0.227, 0.227, 0.227)


def info(cfg: dict) -> dict:
    return {
        "num_classes": int(opt(cfg, "num_classes", 10)),
        "input_size": input_hw(cfg, 32),
        "mean": MEAN,
        "std": STD,
        "modality": "image",
    }


def build(cfg: dict, split: str, aug: dict | None) -> BuiltinImages:
    i = info(cfg)
    length = int(
        opt(cfg, "train_size" if split == "train" else "val_size", 4000 if split == "train" else 1000)
    )
    transform = ImageTensorTransform(i["input_size"], MEAN, STD, aug)
    return BuiltinImages(
        i["num_classes"], i["input_size"], length, split, int(opt(cfg, "seed", 0)), transform
    )
