"""Augmentation, multi-view cropping and normalisation.

Two paths:
- real images (PIL): timm's `create_transform`, i.e. the paper's recipe (bicubic random resized
  crop, flip, RandAugment from a timm string such as "rand-m9-mstd0.5-inc1").
- uint8 tensors (..., C, H, W): the synthetic sets and every video. torchvision.transforms.v2
  treats leading dims as a batch that shares one random draw, so all frames of a clip get the
  same crop, flip and RandAugment ops, which is what video augmentation needs.
Transforms on the tensor path return (x, flipped) so the synthetic video set can mirror its
label (left <-> right) when the clip is flipped. Random erasing (aug["reprob"]) runs on both
paths after normalisation, timm's RandomErasing as the MAE / MAE-ST / MViTv2 recipes use it
(mode "pixel", one box); a clip gets one box shared by all its frames.
"""

import re

import torch
import torch.nn.functional as F
from timm.data import create_transform
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.random_erasing import RandomErasing
from torchvision.transforms import v2

from .common import single_thread

IMAGENET_MEAN, IMAGENET_STD = tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)


def parse_randaug(spec: str) -> dict:
    """timm RandAugment string -> {"num_ops", "magnitude", "mstd"}.

    "rand-m9-mstd0.5-inc1" -> 2 ops, magnitude 9 (of 10), magnitude noise std 0.5. torchvision's
    RandAugment already uses the "increasing" op variants (stronger posterize/solarize at higher
    magnitude), so inc1 is what it does; other timm options are not supported on this path."""
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(
            f"RandAugment spec must start with 'rand-', e.g. 'rand-m9-mstd0.5-inc1'; got {spec!r}"
        )
    out = {"num_ops": 2, "magnitude": 9.0, "mstd": 0.0}
    for p in parts[1:]:
        m = re.fullmatch(r"(mstd|m|n|inc)([\d.]+)", p)
        if m is None:
            raise ValueError(f"unsupported RandAugment option {p!r} in {spec!r} (known: m, n, mstd, inc)")
        key, val = m.groups()
        if key == "m":
            out["magnitude"] = float(val)
        elif key == "n":
            out["num_ops"] = int(val)
        elif key == "mstd":
            out["mstd"] = float(val)
    return out


class RandAugment:
    """v2.RandAugment on uint8 (..., C, H, W) with timm's magnitude scale (0-10) and magnitude
    noise (mstd): magnitude ~ N(m, mstd) per call, clipped to [0, 10], on a 0.1-step grid."""

    def __init__(self, spec: str):
        p = parse_randaug(spec)
        self.magnitude, self.mstd = p["magnitude"], p["mstd"]
        self.op = v2.RandAugment(
            num_ops=p["num_ops"], magnitude=round(self.magnitude * 10), num_magnitude_bins=101
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.magnitude
        if self.mstd > 0:
            m = float(torch.normal(torch.tensor(m), torch.tensor(self.mstd)).clamp(0, 10))
        self.op.magnitude = round(m * 10)
        return self.op(x)


def crop_resize_tensor(x: torch.Tensor, box, size) -> torch.Tensor:
    """uint8 (..., C, H, W) cut to box = (top, left, height, width) and resized to size = (h, w):
    bilinear, antialiased (what v2.RandomResizedCrop does with the box it draws)."""
    return v2.functional.resized_crop(x, *box, size=list(size), antialias=True)


class TensorAugment:
    """Train augmentation of uint8 (..., C, H, W) -> (uint8 (..., C, *size), flipped).

    aug keys: rrc_scale [lo, hi] (default [0.08, 1]), hflip (prob, default 0.5), randaug (timm
    string or None). One draw per call, shared by all leading dims (frames of a clip). A video
    reader can cut and resize itself: draw box(hw), crop, then after_crop()."""

    def __init__(self, size, aug: dict):
        self.size = tuple(size)
        scale = tuple(aug.get("rrc_scale", (0.08, 1.0)))
        self.crop = v2.RandomResizedCrop(self.size, scale=scale, antialias=True)
        self.hflip = float(aug.get("hflip", 0.5))
        self.randaug = RandAugment(aug["randaug"]) if aug.get("randaug") else None

    def box(self, hw) -> tuple[int, int, int, int]:
        """A random resized crop's box (top, left, height, width) in a frame of size hw = (H, W)."""
        p = self.crop.make_params([torch.empty(()).expand(3, *hw)])  # only the size is read
        return p["top"], p["left"], p["height"], p["width"]

    def after_crop(self, x: torch.Tensor):
        """Flip and RandAugment of uint8 (..., C, *size) -> (x, flipped)."""
        flipped = bool(torch.rand(()) < self.hflip)
        if flipped:
            x = x.flip(-1)
        if self.randaug is not None:
            x = self.randaug(x)
        return x, flipped

    def __call__(self, x: torch.Tensor):
        return self.after_crop(crop_resize_tensor(x, self.box(x.shape[-2:]), self.size))


def random_erasing(aug: dict | None) -> RandomErasing | None:
    """timm RandomErasing with probability aug["reprob"] (None when 0 or no aug): mode "pixel"
    (per-pixel normal noise), one box, as MAE's and MViTv2's recipes (RE_MODE pixel, RE_COUNT 1)."""
    prob = float((aug or {}).get("reprob", 0.0))
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"aug.reprob must be a probability in [0, 1], got {prob}")
    return RandomErasing(prob, mode="pixel", max_count=1, device="cpu") if prob > 0 else None


def erase_clip(erase: RandomErasing, x: torch.Tensor) -> torch.Tensor:
    """Erase one box per clip: x float (T, C, H, W) or (C, T, H, W), the same box in every frame
    (the noise differs per frame and channel, as SlowFast's per-clip "cube" erasing). timm erases
    in place, so a contiguous x is erased where it lies."""
    return erase(x.reshape(-1, *x.shape[-2:])).reshape(x.shape)


def normalize(
    x: torch.Tensor, mean, std, channel_dim: int = -3, out: torch.Tensor | None = None
) -> torch.Tensor:
    """uint8 x with channels at `channel_dim` ((..., C, H, W) by default) -> float32
    (x / 255 - mean) / std, same shape, contiguous (or written into `out`).

    One float copy, then x * (1 / (255 std)) - mean / std in place: a 3x16x224x224 clip takes
    ~1.3 ms on one thread, where one mixed-dtype addcmul from uint8 took ~10 ms (no vectorised
    kernel for uint8 * float; measured on the shared box)."""
    view = (-1,) + (1,) * (x.dim() - 1 - channel_dim % x.dim())
    std = torch.tensor(std, dtype=torch.float64).view(view)
    scale = (1 / (255 * std)).float()
    shift = (-torch.tensor(mean, dtype=torch.float64).view(view) / std).float()
    out = torch.empty(x.shape, dtype=torch.float32) if out is None else out
    return out.copy_(x).mul_(scale).add_(shift)


def cover_size(hw, size) -> tuple[int, int]:
    """The (h, w) that keeps hw's aspect and covers `size` exactly along one side."""
    h, w = hw
    s = max(size[0] / h, size[1] / w)
    return max(size[0], round(h * s)), max(size[1], round(w * s))


def resize_cover(x: torch.Tensor, size) -> torch.Tensor:
    """Resize uint8 (..., C, H, W), keeping aspect, so that it covers `size` (h, w) exactly along
    one side (for square crops: the short side becomes the crop size, as in SlowFast's eval)."""
    h, w = x.shape[-2:]
    new = cover_size((h, w), size)
    if new == (h, w):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]).float(), size=new, mode="bilinear", antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8).reshape(*lead, x.shape[-3], *new)


def spatial_views(x: torch.Tensor, size, n: int) -> torch.Tensor:
    """uint8 (..., C, H, W) -> (n, ..., C, h, w): resize to cover `size`, then n crops evenly
    spaced along the longer side (n=3: left/centre/right or top/centre/bottom; n=1: centre)."""
    x = resize_cover(x, size)
    h, w = x.shape[-2:]
    slack_h, slack_w = h - size[0], w - size[1]
    crops = []
    for i in range(n):
        f = 0.5 if n == 1 else i / (n - 1)
        # Crops move along the side with slack; the other side is centred.
        top = round(slack_h * (f if slack_h >= slack_w else 0.5))
        left = round(slack_w * (f if slack_w > slack_h else 0.5))
        crops.append(x[..., top : top + size[0], left : left + size[1]])
    return torch.stack(crops)


class ImageTensorTransform:
    """uint8 (C, H, W) -> (float32 (C, h, w) normalised, flipped). aug=None: resize-and-centre-crop."""

    def __init__(self, size, mean, std, aug: dict | None):
        self.size, self.mean, self.std = tuple(size), mean, std
        self.aug = TensorAugment(size, aug) if aug is not None else None
        self.erase = random_erasing(aug)

    @single_thread()
    def __call__(self, x):
        flipped = False
        if self.aug is not None:
            x, flipped = self.aug(x)
        else:
            x = spatial_views(x, self.size, 1)[0]
        x = normalize(x, self.mean, self.std)
        return (x if self.erase is None else self.erase(x)), flipped


class VideoTransform:
    """Clip -> (float32 normalised, flipped).

    Train (aug given): uint8 (T, C, H, W) -> (C, T, h, w) with one crop/flip/RandAugment per clip;
    `repeated` does R clips at once. Eval (aug None): uint8 (Vt, T, C, H, W) temporal views ->
    Vs spatial views each -> (V, C, T, h, w) with V = Vt * Vs (temporal-major), or (C, T, h, w)
    when V == 1.

    A reader that cuts and resizes frames itself (video files: swscale, in video_io) asks boxes()
    and out_size() for its frame size and hands its windows to cropped(): the same boxes, the
    same flips and RandAugment, only the crop-resize kernel differs."""

    def __init__(self, size, mean, std, aug: dict | None, spatial_views: int = 1):
        self.size, self.mean, self.std, self.views = tuple(size), mean, std, spatial_views
        self.aug = TensorAugment(size, aug) if aug is not None else None
        self.erase = random_erasing(aug)

    def boxes(self, hw, n: int) -> list[tuple[int, int, int, int]]:
        """n crop boxes (top, left, height, width) in frames of size hw: train, a random resized
        crop each; eval, the whole frame (resized to out_size, then cut into spatial views)."""
        if self.aug is None:
            return [(0, 0, *hw)] * n
        return [self.aug.box(hw) for _ in range(n)]

    def out_size(self, hw) -> tuple[int, int]:
        """Size the boxes are resized to: train, the input size; eval, the size covering it."""
        return self.size if self.aug is not None else cover_size(hw, self.size)

    @single_thread()
    def cropped(self, windows: torch.Tensor) -> torch.Tensor:
        """uint8 (W, T, C, h, w) windows already cut to boxes() and resized to out_size() ->
        train: float32 (W, C, T, h, w); eval: as __call__."""
        return self._train(windows)[0] if self.aug is not None else self._views(windows)

    def _train(self, clips):
        """uint8 (R, T, C, h, w) at the input size -> (float32 (R, C, T, h, w), flips): each clip
        its own flip, RandAugment and erased box, normalised straight into the output."""
        r, t, c, h, w = clips.shape
        out, flips = torch.empty(r, c, t, h, w), []
        for k, clip in enumerate(clips):
            clip, flipped = self.aug.after_crop(clip)
            normalize(clip.transpose(0, 1), self.mean, self.std, channel_dim=0, out=out[k])
            if self.erase is not None:
                erase_clip(self.erase, out[k])  # in place: out[k] is contiguous
            flips.append(flipped)
        return out, flips

    def _views(self, clip):
        """uint8 (Vt, T, C, H, W) or (T, C, H, W) -> float32 (V, C, T, h, w), or (C, T, h, w)."""
        if clip.dim() == 4:
            clip = clip[None]
        x = spatial_views(clip, self.size, self.views).transpose(0, 1)  # (Vt, Vs, T, C, h, w)
        x = normalize(x.flatten(0, 1).transpose(1, 2), self.mean, self.std, channel_dim=1)
        return x[0] if x.shape[0] == 1 else x

    def _crop(self, clips):
        """Reference crop of whole frames: uint8 (R, T, C, H, W) -> (R, T, C, h, w), torchvision."""
        boxes = self.boxes(clips.shape[-2:], len(clips))
        return torch.stack([crop_resize_tensor(c, box, self.size) for c, box in zip(clips, boxes)])

    @single_thread()
    def repeated(self, clips):
        """Train, R clips of whole frames: uint8 (R, T, C, H, W) -> float32 (R, C, T, h, w)."""
        return self._train(self._crop(clips))[0]

    @single_thread()
    def __call__(self, clip):
        if self.aug is not None:
            x, flips = self._train(self._crop(clip[None]))
            return x[0], flips[0]
        return self._views(clip), False


def pil_image_transform(size, mean, std, aug: dict | None, crop_pct: float):
    """timm transform for PIL images -> float32 (C, h, w). Train: bicubic random resized crop with
    aug["rrc_scale"], flip, optional RandAugment and random erasing (aug["reprob"], default 0);
    no colour jitter (MAE's recipe). Eval: resize to size / crop_pct, centre crop."""
    if aug is None:
        return create_transform(
            tuple(size), is_training=False, interpolation="bicubic", crop_pct=crop_pct, mean=mean, std=std
        )
    return create_transform(
        tuple(size),
        is_training=True,
        scale=tuple(aug.get("rrc_scale", (0.08, 1.0))),
        hflip=float(aug.get("hflip", 0.5)),
        color_jitter=None,
        auto_augment=aug.get("randaug") or None,
        interpolation="bicubic",
        re_prob=float(aug.get("reprob", 0.0)),
        re_mode="pixel",
        re_count=1,
        mean=mean,
        std=std,
    )
