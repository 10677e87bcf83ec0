"""Reading selected frames of a clip: a video file (PyAV) or a folder of frame images.

    with open_clip(path) as clip:          # one open per item, however many windows it samples
        n = clip.num_frames
        frames = clip.read([3, 7, 11, 200])  # uint8 (4, 3, H, W), any order, repeats allowed

Video files are decoded only where a clip needs them: one demux pass (packets only, no
decoding) gives every frame's pts and which frames are keyframes; each wanted window is then
reached by seeking to the keyframe at or before its first frame and decoding forward to its
last frame. Windows that share a GOP with frames already decoded continue without seeking.
A stream whose packets lack timestamps falls back to decoding from frame 0.

torchvision 0.29's open-source wheel no longer ships `torchvision.io.read_video` (its video IO
moved to TorchCodec), so video files are decoded with PyAV directly. TorchCodec 0.17 (the build
for torch 2.14) installs but cannot load here: it needs the system's FFmpeg shared libraries
(libavutil.so.56-61), which PyAV bundles and this machine lacks. Frame folders are read with PIL
(torchvision's image decoders are deprecated in 0.29 as well).
"""

import bisect
import contextlib
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
    """uint8 (H, W, 3)."""
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB")))


def _rgb(frame) -> torch.Tensor:
    """A decoded av.VideoFrame -> uint8 (H, W, 3)."""
    return torch.from_numpy(frame.to_ndarray(format="rgb24"))


def _stack(frames: list[torch.Tensor]) -> torch.Tensor:
    """uint8 (H, W, 3) frames -> (N, 3, H, W), a channels-last view: stacking whole frames is a
    plain copy (10x faster than stacking permuted ones), and the antialiased resize of the
    augmentation runs ~2x faster on channels-last uint8."""
    return torch.stack(frames).permute(0, 3, 1, 2)


def _av():
    try:
        import av
    except ImportError as e:
        raise ImportError(
            "decoding video files needs PyAV: pip install -e '.[video]' (or pip install av)"
        ) from e
    return av


def _pick(frames: dict, indices: list[int]) -> torch.Tensor:
    """Stack frames[i] for i in indices; an index past the last decoded frame (a header or
    index that overstates the count) takes the last one."""
    if not frames:
        raise ValueError("could not decode any frame")
    end = max(frames)
    return _stack([frames[i if i in frames else end] for i in indices])


class FrameFolder:
    """A clip stored as one image per frame."""

    def __init__(self, path: str):
        self.path, self.files = path, _frame_files(path)
        if not self.files:
            raise FileNotFoundError(f"no frame images {FRAME_EXTENSIONS} in {path}")
        self.num_frames = len(self.files)

    def read(self, indices: list[int]) -> torch.Tensor:
        """uint8 (len(indices), 3, H, W); indices past the end take the last frame."""
        names = [self.files[min(i, self.num_frames - 1)] for i in indices]
        loaded = {n: _read_image(os.path.join(self.path, n)) for n in set(names)}
        return _stack([loaded[n] for n in names])

    def close(self) -> None:
        pass


class VideoFile:
    """An open video file with a frame index: num_frames is exact (packets counted, not the
    header's estimate) and read() seeks instead of decoding from frame 0."""

    def __init__(self, path: str):
        self.path = path
        self.container = _av().open(path)
        try:
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
            packets = [(p.pts, p.is_keyframe) for p in self.container.demux(self.stream) if p.size]
        except Exception:
            self.container.close()
            raise
        # Frames come out of the decoder in presentation order, so a frame's index is the rank
        # of its pts among all packets' pts (exact for variable frame rates and B-frames).
        pts = [p for p, _ in packets]
        self.indexed = bool(pts) and None not in pts and len(set(pts)) == len(pts)
        if self.indexed:
            self.pts = sorted(pts for pts, _ in packets)
            self.index_of = {pts: i for i, pts in enumerate(self.pts)}
            self.keyframes = sorted(self.index_of[pts] for pts, key in packets if key) or [0]
        self.num_frames = len(packets)

    def read(self, indices: list[int]) -> torch.Tensor:
        """uint8 (len(indices), 3, H, W) holding frames `indices` (any order, repeats allowed)."""
        last = max(self.num_frames - 1, 0)
        indices = [min(max(i, 0), last) for i in indices]
        if not self.indexed:
            return self.read_sequential(indices)
        frames = self._read_seeking(sorted(set(indices)))
        if not set(indices) <= frames.keys():  # a frame the index promised never came out
            return self.read_sequential(indices)
        return _pick(frames, indices)

    def _read_seeking(self, wanted: list[int]) -> dict:
        """{index: uint8 (H, W, 3)} for the sorted indices `wanted`."""
        wanted_set, frames = set(wanted), {}
        decoded, pos = None, -1  # the frame iterator and the index of its last frame
        for target in wanted:
            if target <= pos:
                continue  # decoded already (or skipped over: the caller falls back)
            key = self.keyframes[bisect.bisect_right(self.keyframes, target) - 1]
            if decoded is None or key > pos:  # a keyframe lies between us and the target: jump
                self.container.seek(self.pts[key], stream=self.stream, backward=True, any_frame=False)
                decoded = self.container.decode(self.stream)
            for frame in decoded:
                if frame.pts not in self.index_of:
                    continue  # a frame without a known timestamp cannot be placed
                pos = self.index_of[frame.pts]
                if pos in wanted_set:
                    frames[pos] = _rgb(frame)
                if pos >= target:
                    break
            else:
                break  # end of stream
        return frames

    def read_sequential(self, indices: list[int]) -> torch.Tensor:
        """The same frames by decoding from frame 0 up to the largest index, counting frames as
        they come out (no index needed; the reference the seeking path must equal)."""
        wanted, last = set(indices), max(indices)
        frames = {}
        self.container.seek(0)
        for i, frame in enumerate(self.container.decode(self.stream)):
            if i in wanted or i == last:
                frames[i] = _rgb(frame)
            if i >= last:
                break
        return _pick(frames, indices)

    def close(self) -> None:
        self.container.close()


@contextlib.contextmanager
def open_clip(path: str):
    """A FrameFolder for a folder, else a VideoFile; closed on exit."""
    clip = FrameFolder(path) if os.path.isdir(path) else VideoFile(path)
    try:
        yield clip
    finally:
        clip.close()


def num_frames(path: str) -> int:
    """Frame count (a folder's image count; a video's packet count)."""
    with open_clip(path) as clip:
        return clip.num_frames


def read_frames(path: str, indices: list[int]) -> torch.Tensor:
    """uint8 (len(indices), 3, H, W) holding frames `indices` of the clip at `path`."""
    with open_clip(path) as clip:
        return clip.read(indices)
