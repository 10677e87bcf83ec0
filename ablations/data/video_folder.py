"""`video_folder`: Kinetics-style clips <root>/{train,val}/<class>/<clip>.mp4 or <clip>/<frames>.

Clip sampling follows the paper (MAE-ST / SlowFast): num_frames frames taken every frame_stride
frames (16 x 4 by default). Train: one clip at a random temporal start, one random resized crop
and flip for all its frames. Val: views.temporal clips with evenly spaced starts, each resized
(short side = crop) and cut into views.spatial crops along the long side -> (V, C, T, H, W).
The reader cuts and resizes (video files: FFmpeg's swscale while converting to RGB; frame
folders: torchvision); the transform draws the boxes and does the rest.

Links inside a class folder: to a clip file followed, to a folder (a frame folder included)
refused (ablations/data/folders.py, docs/data.md). Building a split prints its clips per class.
"""

import torch
from torch.utils.data import Dataset

from .common import input_hw, limit, opt, repeats, views
from .folders import check_layout, class_names, say_counts, scan_split, split_dir
from .transforms import IMAGENET_MEAN, IMAGENET_STD, VideoTransform
from .video_io import VIDEO_EXTENSIONS, is_clip, open_clip

REPEATS_NATIVELY = True  # build() decodes once for all aug.repeated clips (see data/__init__.py)

LAYOUT = (
    f"<root>/train/<class>/<clip>{{{','.join(VIDEO_EXTENSIONS)}}} or <root>/train/<class>/<clip>/<frame>.jpg"
    " (the same under <root>/val/)"
)


def clip_indices(start: int, num: int, stride: int, available: int) -> list[int]:
    """Frame indices start, start + stride, ... (num of them), clamped to the last frame so a
    clip shorter than the span repeats its last frame."""
    return [min(start + i * stride, max(available - 1, 0)) for i in range(num)]


def temporal_starts(available: int, span: int, n: int) -> list[int]:
    """n start frames evenly spaced over the clip (n=1: the centred window)."""
    slack = max(available - span, 0)
    if n == 1:
        return [slack // 2]
    return [round(slack * i / (n - 1)) for i in range(n)]


class VideoFolder(Dataset):
    """Item: (x, y). Train: x float32 (C, T, H, W), or (R, C, T, H, W) with y (R,) when repeated
    R > 1. Val: (V, C, T, H, W) when V > 1, else (C, T, H, W)."""

    def __init__(self, clips, num_frames_, stride, train: bool, temporal_views: int, transform, repeated=1):
        self.clips, self.num_frames, self.stride = clips, num_frames_, stride
        self.train, self.temporal_views, self.transform = train, temporal_views, transform
        self.repeated = repeated
        self.threads = None  # decoder threads: video_io.VideoFile (None: off in DataLoader workers)

    def __len__(self) -> int:
        return len(self.clips)

    def _indices(self, available: int) -> list[list[int]]:
        span = (self.num_frames - 1) * self.stride + 1
        if self.train:
            starts = torch.randint(0, max(available - span, 0) + 1, (self.repeated,)).tolist()
        else:
            starts = temporal_starts(available, span, self.temporal_views)
        return [clip_indices(s, self.num_frames, self.stride, available) for s in starts]

    def __getitem__(self, index: int):
        path, y = self.clips[index]
        try:
            with open_clip(path, self.threads) as clip:  # one open and one decode pass for all windows
                windows, hw = self._indices(clip.num_frames), clip.frame_size
                boxes = self.transform.boxes(hw, len(windows))
                # uint8 (W, T, C, h, w), cut and resized by the reader
                frames = clip.read_windows(windows, boxes, self.transform.out_size(hw))
        except Exception as e:
            raise RuntimeError(f"failed to read clip {path}: {e}") from e
        x = self.transform.cropped(frames)
        if not self.train:
            return x, y
        if self.repeated == 1:
            return x[0], y
        return x, torch.full((self.repeated,), y)


def _scan(split_path: str, classes: list[str]) -> list[tuple[str, int]]:
    """(clip path, label) of every clip file or frame folder directly in a class folder (a val
    split may lack a class); a link to a folder is refused (folders.class_items)."""
    items = scan_split(split_path, classes, is_clip, recursive=False)
    say_counts("video_folder", split_path, items, "clips")
    return [(path, y) for y, c in enumerate(classes) for path in items[c]]


def check(cfg: dict, log=print) -> None:
    """Before any work: the folder layout (folders.check_layout)."""
    check_layout(cfg, LAYOUT, "video_folder", is_clip, "clips", log)


def info(cfg: dict) -> dict:
    t = int(opt(cfg, "num_frames", 16))
    return {
        "num_classes": len(class_names(cfg.get("root"), LAYOUT, "video_folder")),
        "input_size": (t, *input_hw(cfg, 224)),
        "num_frames": t,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "modality": "video",
    }


def build(cfg: dict, split: str, aug: dict | None):
    classes = class_names(cfg.get("root"), LAYOUT, "video_folder")
    path = split_dir(cfg.get("root"), split, LAYOUT, "video_folder")
    clips = _scan(path, classes)
    if not clips:
        raise FileNotFoundError(f"video_folder: no clips in {path}/<class>/; expected {LAYOUT}")
    spatial, temporal = views(cfg) if split == "val" else (1, 1)
    train = split == "train"
    transform = VideoTransform(
        input_hw(cfg, 224), IMAGENET_MEAN, IMAGENET_STD, aug if train else None, spatial
    )
    ds = VideoFolder(
        clips,
        int(opt(cfg, "num_frames", 16)),
        int(opt(cfg, "frame_stride", 4)),
        train,
        temporal,
        transform,
        repeated=repeats(aug) if train else 1,
    )
    return limit(ds, opt(cfg, "train_size" if train else "val_size", None), int(opt(cfg, "seed", 0)))
