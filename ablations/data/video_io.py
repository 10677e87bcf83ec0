"""Reading selected frames of a clip: a video file (PyAV) or a folder of frame images.

torchvision 0.29's open-source wheel no longer ships `torchvision.io.read_video` (its video IO
moved to TorchCodec), so video files are decoded with PyAV directly; frame folders are read
with PIL (torchvision's image decoders are deprecated in 0.29 as well).
"""

import os

import numpy as np
import torch
from PIL import Image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_clip(path: str) -> bool:
    """A video file, or a folder holding at least one frame image."""
    if os.path.isfile(path):
        return path.lower().endswith(VIDEO_EXTENSIONS)
    return os.path.isdir(path) and bool(_frame_files(path))


def _frame_files(folder: str) -> list[str]:
    # Sorted by name: frames are expected to be named in order (img_00001.jpg, ...).
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(FRAME_EXTENSIONS))


def _read_image(path: str) -> torch.Tensor:
    """uint8 (3, H, W)."""
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


def _av():
    try:
        import av
    except ImportError as e:
        raise ImportError(
            "decoding video files needs PyAV: pip install -e '.[video]' (or pip install av)"
        ) from e
    return av


def num_frames(path: str) -> int:
    """Frame count: the folder size, or the container header (decoding once when it has none)."""
    if os.path.isdir(path):
        return len(_frame_files(path))
    with _av().open(path) as container:
        n = int(container.streams.video[0].frames or 0)
        return n or sum(1 for _ in container.decode(video=0))


def read_frames(path: str, indices: list[int]) -> torch.Tensor:
    """uint8 (len(indices), 3, H, W) holding frames `indices` (any order, repeats allowed).

    Video files are decoded sequentially up to the largest index (no seeking: exact frames and
    cheap for short clips); indices past the real end (headers can overstate the count) are
    clamped to the last decoded frame."""
    if os.path.isdir(path):
        files = _frame_files(path)
        if not files:
            raise FileNotFoundError(f"no frame images {FRAME_EXTENSIONS} in {path}")
        names = [files[min(i, len(files) - 1)] for i in indices]
        loaded = {n: _read_image(os.path.join(path, n)) for n in set(names)}
        return torch.stack([loaded[n] for n in names])
    wanted, last = set(indices), max(indices)
    frames = {}
    with _av().open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted or i == last:
                frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            if i >= last:
                break
    if not frames:
        raise ValueError(f"could not decode any frame from {path}")
    end = max(frames)
    return torch.stack([frames[i if i in frames else end] for i in indices])
