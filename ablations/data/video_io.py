"""Reading selected frames of a clip: a video file (PyAV) or a folder of frame images.

    with open_clip(path) as clip:          # one open per item, however many windows it samples
        n, (H, W) = clip.num_frames, clip.frame_size
        frames = clip.read([3, 7, 11, 200])  # uint8 (4, 3, H, W), any order, repeats allowed
        # uint8 (2, 4, 3, 224, 224): window k cut to boxes[k] = (top, left, height, width), resized
        clips = clip.read_windows([[3, 7, 11, 15], [40, 44, 48, 52]], boxes, (224, 224))

Video files are decoded only where a clip needs them: one demux pass (packets only, no
decoding) gives every frame's pts and which frames are keyframes; each wanted window is then
reached by seeking to the keyframe at or before its first frame and decoding forward to its
last frame. Windows that share a GOP with frames already decoded continue without seeking.
A stream whose packets lack timestamps falls back to decoding from frame 0. Packets of frames
no window wants are decoded only if other frames need them: non-reference frames are skipped
(the codec's `skip_frame = NONREF`, set per packet). `read_windows` crops, resizes and converts
to RGB in FFmpeg (video_resize.py); `read` returns whole RGB frames (the reference path).

Decoder threads: one inside a DataLoader worker (the workers already fill the cores; FFmpeg's
frame threads cost 4-22% more CPU per clip, partly frames decoded past a window's end while
the threads run ahead), FFmpeg's automatic threading in the main process (num_workers 0), where
wall time is what a thread saves.

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

from .transforms import crop_resize_tensor
from .video_resize import crop_resize

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


def _pick(frames: dict, indices: list[int]) -> list:
    """[frames[i] for i in indices]; an index past the last decoded frame (a header or index that
    overstates the count) takes the last one."""
    if not frames:
        raise ValueError("could not decode any frame")
    end = max(frames)
    return [frames[i if i in frames else end] for i in indices]


def reference_windows(read, windows, boxes, size) -> torch.Tensor:
    """The reference read_windows: whole RGB frames from read(indices), cut and resized by
    torchvision (bilinear, antialiased) -> uint8 (W, T, 3, h, w)."""
    frames = read([i for w in windows for i in w])
    frames = frames.view(len(windows), len(windows[0]), *frames.shape[1:])
    return torch.stack([crop_resize_tensor(f, box, size) for f, box in zip(frames, boxes)])


class FrameFolder:
    """A clip stored as one image per frame."""

    def __init__(self, path: str):
        self.path, self.files = path, _frame_files(path)
        if not self.files:
            raise FileNotFoundError(f"no frame images {FRAME_EXTENSIONS} in {path}")
        self.num_frames = len(self.files)
        with Image.open(os.path.join(path, self.files[0])) as img:
            self.frame_size = (img.height, img.width)

    def read(self, indices: list[int]) -> torch.Tensor:
        """uint8 (len(indices), 3, H, W); indices past the end take the last frame."""
        names = [self.files[min(i, self.num_frames - 1)] for i in indices]
        loaded = {n: _read_image(os.path.join(self.path, n)) for n in set(names)}
        return _stack([loaded[n] for n in names])

    def read_windows(self, windows: list[list[int]], boxes: list, size) -> torch.Tensor:
        """uint8 (W, T, 3, h, w): window k's frames cut to boxes[k] = (top, left, height, width)
        and resized to size = (h, w), by torchvision."""
        return reference_windows(self.read, windows, boxes, size)

    def close(self) -> None:
        pass


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


class VideoFile:
    """An open video file with a frame index: num_frames is exact (packets counted, not the
    header's estimate) and reads seek instead of decoding from frame 0. `decoded` counts the
    frames that came out of the decoder (skipped non-reference frames do not)."""

    skip_unwanted = True  # let the decoder skip unwanted non-reference frames (off: tests, bench)

    def __init__(self, path: str, threads: bool | None = None):
        """threads: FFmpeg's decoder threads on/off; None: off inside a DataLoader worker."""
        self.path, self.decoded = path, 0
        self.container = _av().open(path)
        try:
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "NONE" if (_in_worker() if threads is None else not threads) else "AUTO"
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
        codec = self.stream.codec_context
        self.frame_size = (codec.height, codec.width)

    def read(self, indices: list[int]) -> torch.Tensor:
        """uint8 (len(indices), 3, H, W) holding frames `indices` (any order, repeats allowed)."""
        return _stack([_rgb(f) for f in self._frames(indices)])

    def read_windows(self, windows: list[list[int]], boxes: list, size) -> torch.Tensor:
        """uint8 (W, T, 3, h, w), channels-last in memory: window k's frames cut to boxes[k] =
        (top, left, height, width) and resized to size = (h, w) by swscale, from one decode pass."""
        frames = self._frames([i for w in windows for i in w])
        if len({(f.width, f.height, f.format.name) for f in frames}) > 1 or (
            (frames[0].height, frames[0].width) != self.frame_size
        ):  # the size changed mid-stream, or the header misstates it: boxes were drawn for frame_size
            return reference_windows(self.read, windows, boxes, size)
        t = len(windows[0])
        out = np.empty((len(windows), t, *size, 3), np.uint8)
        for k, box in enumerate(boxes):
            crop_resize(frames[k * t : (k + 1) * t], box, size, out[k])
        return torch.from_numpy(out).permute(0, 1, 4, 2, 3)

    def _frames(self, indices: list[int]) -> list:
        """Decoded av.VideoFrames for `indices`, clamped to [0, num_frames - 1]."""
        last = max(self.num_frames - 1, 0)
        indices = [min(max(i, 0), last) for i in indices]
        if not self.indexed:
            return self._sequential(indices)
        frames = self._read_seeking(sorted(set(indices)))
        if not set(indices) <= frames.keys():  # a frame the index promised never came out
            return self._sequential(indices)
        return _pick(frames, indices)

    def _decode(self, key: int, wanted_pts: set):
        """Frames from keyframe `key` on, in presentation order. Packets whose frame is not
        wanted may be skipped by the decoder when nothing refers to them (NONREF): a B-frame
        nobody asked for costs nothing, and the frames that do come out are unchanged."""
        self.container.seek(self.pts[key], stream=self.stream, backward=True, any_frame=False)
        codec = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            skip = self.skip_unwanted and packet.pts is not None and packet.pts not in wanted_pts
            codec.skip_frame = "NONREF" if skip else "DEFAULT"
            for frame in codec.decode(packet):
                self.decoded += 1
                yield frame

    def _read_seeking(self, wanted: list[int]) -> dict:
        """{index: av.VideoFrame} for the sorted indices `wanted`."""
        wanted_set, frames = set(wanted), {}
        wanted_pts = {self.pts[i] for i in wanted}
        decoded, pos = None, -1  # the frame iterator and the index of its last frame
        for target in wanted:
            if target <= pos:
                continue  # decoded already (or skipped over: the caller falls back)
            key = self.keyframes[bisect.bisect_right(self.keyframes, target) - 1]
            if decoded is None or key > pos:  # a keyframe lies between us and the target: jump
                decoded = self._decode(key, wanted_pts)
            for frame in decoded:
                if frame.pts not in self.index_of:
                    continue  # a frame without a known timestamp cannot be placed
                pos = self.index_of[frame.pts]
                if pos in wanted_set:
                    frames[pos] = frame
                if pos >= target:
                    break
            else:
                break  # end of stream
        self.stream.codec_context.skip_frame = "DEFAULT"
        return frames

    def _sequential(self, indices: list[int]) -> list:
        """Frames `indices` by decoding from frame 0 up to the largest index, counting frames as
        they come out (no index needed; the reference the seeking path must equal)."""
        wanted, last = set(indices), max(indices)
        frames = {}
        self.stream.codec_context.skip_frame = "DEFAULT"
        self.container.seek(0)
        for i, frame in enumerate(self.container.decode(self.stream)):
            self.decoded += 1
            if i in wanted or i == last:
                frames[i] = frame
            if i >= last:
                break
        return _pick(frames, indices)

    def read_sequential(self, indices: list[int]) -> torch.Tensor:
        """uint8 (len(indices), 3, H, W) decoded from frame 0 (the reference for tests)."""
        return _stack([_rgb(f) for f in self._sequential(indices)])

    def close(self) -> None:
        self.container.close()


@contextlib.contextmanager
def open_clip(path: str, threads: bool | None = None):
    """A FrameFolder for a folder, else a VideoFile (threads: see VideoFile); closed on exit."""
    clip = FrameFolder(path) if os.path.isdir(path) else VideoFile(path, threads)
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
