"""`builtin_video`: synthetic clips whose label is a motion, invisible in any single frame.

Classes (MOTIONS): move left / right / up / down, rotate clockwise / counter-clockwise, grow,
shrink, flicker (colour alternates every frame), static. The object's shape is random and
independent of the label. Every single frame has the same distribution in every class, by
construction:
- position is uniform on a torus (objects wrap around the border), so translating it keeps it
  uniform;
- rotation angle is uniform on the circle;
- log-scale is uniform on an interval and grows/shrinks modulo that interval (a sawtooth:
  a growing object pops back small), so it stays uniform;
- the flicker colour is drawn from the same distribution as the object colour.
Moreover frame 0 does not depend on the label at all (same seed -> same first frame for every
class), which tests/test_data_builtin.py checks. Only the change between frames tells the class.
"""

import math

import torch

from .common import GeneratedItems, input_hw, opt, single_thread, views
from .synthetic import Draws, Scene, contrast_color, item_generator
from .transforms import VideoTransform

MOTIONS = ("left", "right", "up", "down", "cw", "ccw", "grow", "shrink", "flicker", "static")
# Shapes whose rotation is visible (no disc/ring) and small enough steps never alias with a
# symmetry (cross/square: 90 deg, triangle: 120 deg; steps are at most 23 deg).
OBJECTS = ("square", "triangle", "cross", "ell", "pair")
# A horizontal flip mirrors these motions; the dataset swaps the label so the flip stays correct.
HFLIP_LABEL = {"left": "right", "right": "left", "cw": "ccw", "ccw": "cw"}
LOG_SCALE = (math.log(0.25), math.log(0.65))

_DIRECTION = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def trajectory(label: int, d: Draws, scene: Scene, num_frames: int) -> dict:
    """Per-frame object state for class `label`: shape, center (T, 2) in [-1, 1), angle (T,),
    log_scale (T,), color (T, 3). All draws happen whatever the label (see Draws)."""
    motion = MOTIONS[label]
    shape = OBJECTS[int(d(0, len(OBJECTS) - 1e-9))]
    pos0 = torch.tensor([d(-1, 1), d(-1, 1)], dtype=torch.float64)
    angle0, phase = d(0, 2 * math.pi), d(0, LOG_SCALE[1] - LOG_SCALE[0])
    speed, omega, growth = d(0.12, 0.2), d(0.2, 0.4), d(0.06, 0.1)
    t = torch.arange(num_frames, dtype=torch.float64)

    step = torch.tensor(_DIRECTION.get(motion, (0, 0)), dtype=torch.float64) * speed
    center = torch.remainder(pos0 + t[:, None] * step + 1, 2) - 1
    spin = {"cw": 1, "ccw": -1}.get(motion, 0)  # y points down, so +angle turns clockwise on screen
    angle = angle0 + spin * omega * t
    sign = {"grow": 1, "shrink": -1}.get(motion, 0)
    log_scale = LOG_SCALE[0] + torch.remainder(phase + sign * growth * t, LOG_SCALE[1] - LOG_SCALE[0])
    # Flicker: odd frames use a second colour with the same distribution (frac -> 1.5 - frac maps
    # U[0.5, 1] onto itself) but a different value.
    alt = contrast_color(scene.bg_base, 1.5 - scene.color_frac)
    odd = (t.long() % 2 == 1) & (motion == "flicker")
    color = torch.where(odd[:, None], alt, scene.object_color)
    return {"shape": shape, "center": center, "angle": angle, "log_scale": log_scale, "color": color}


def render_clip(
    seed: int, split: str, index: int, label: int, size: tuple[int, int], num_frames: int
) -> torch.Tensor:
    """uint8 (T, 3, H, W): clip `index` of `split`, drawn with the given label."""
    with single_thread():
        gen = item_generator(seed, split, index)
        d = Draws(gen)
        scene = Scene(d)
        traj = trajectory(label, d, scene, num_frames)
        noise = torch.randn((num_frames, 3, *size), generator=gen, dtype=torch.float64)
        canvas = scene.canvas(size)
        frames = []
        for i in range(num_frames):
            obj = {
                "shape": traj["shape"],
                "center": traj["center"][i],
                "angle": float(traj["angle"][i]),
                "scale": math.exp(traj["log_scale"][i]),
                "color": traj["color"][i],
            }
            frames.append(scene.draw(canvas, obj, noise[i], wrap=True))
        return torch.stack(frames)


MAX_CLASSES = len(MOTIONS)  # data.num_classes may be 2..MAX_CLASSES (checked before any work)


class BuiltinVideo(GeneratedItems):
    """Synthetic motion clips. Item: (x, y); y = index % num_classes.

    transform(uint8 (T, 3, H, W)) -> (x, flipped); a flipped clip gets the mirrored label.
    With temporal views > 1 (val), a clip of num_frames * temporal frames is rendered and the
    transform cuts the views from it (motion continues consistently through the longer clip).
    """

    def __init__(self, num_classes, input_size, num_frames, length, split, seed, transform, frames_to_render):
        if not 2 <= num_classes <= len(MOTIONS):
            raise ValueError(
                f"builtin_video has at most {len(MOTIONS)} classes, got num_classes={num_classes}"
            )
        super().__init__(num_classes, length)
        self.size, self.num_frames, self.split, self.seed = tuple(input_size), num_frames, split, seed
        self.transform, self.frames_to_render = transform, frames_to_render
        names = MOTIONS[:num_classes]
        # Mirrored label per class; None where the mirror class is not among the first num_classes.
        mirror = [HFLIP_LABEL.get(m, m) for m in names]
        self.flip_label = [names.index(m) if m in names else None for m in mirror]

    def __getitem__(self, index: int):
        y = self.label(index)
        clip = self.cache.get(
            index,
            lambda: render_clip(self.seed, self.split, index, y, self.size, self.frames_to_render),
        )
        if self.frames_to_render > self.num_frames:  # temporal views: consecutive windows
            clip = clip.view(-1, self.num_frames, *clip.shape[1:])  # (Vt, T, 3, H, W)
        x, flipped = self.transform(clip)
        if flipped and self.flip_label[y] is None:
            return x.flip(-1), y  # the mirror class is absent: undo the flip instead
        return x, (self.flip_label[y] if flipped else y)


# Mean / std of the pixels / 255 over 600 train clips at 32 px: per channel 0.497-0.501 /
# 0.225-0.229 (same scene statistics as the image set).
MEAN = (0.5, 0.5, 0.5)
STD = (0.227, 0.227, 0.227)


def info(cfg: dict) -> dict:
    t = int(opt(cfg, "num_frames", 8))
    return {
        "num_classes": int(opt(cfg, "num_classes", 10)),
        "input_size": (t, *input_hw(cfg, 32)),
        "num_frames": t,
        "mean": MEAN,
        "std": STD,
        "modality": "video",
    }


def build(cfg: dict, split: str, aug: dict | None) -> BuiltinVideo:
    """frame_stride does not apply (each rendered frame is one time step of the motion)."""
    i = info(cfg)
    train = split == "train"
    spatial, temporal = views(cfg) if not train else (1, 1)
    length = int(opt(cfg, "train_size" if train else "val_size", 4000 if train else 1000))
    transform = VideoTransform(i["input_size"][1:], MEAN, STD, aug if train else None, spatial)
    t = i["num_frames"]
    return BuiltinVideo(
        i["num_classes"],
        i["input_size"][1:],
        t,
        length,
        split,
        int(opt(cfg, "seed", 0)),
        transform,
        frames_to_render=t * temporal,
    )
