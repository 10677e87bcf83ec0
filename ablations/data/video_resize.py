"""Crop, resize and RGB-convert decoded video frames in one FFmpeg swscale pass.

    out = np.empty((T, h, w, 3), np.uint8)
    crop_resize(frames, box=(top, left, height, width), size=(h, w), out=out)

The reference path converts each whole decoded YUV frame to RGB (`to_ndarray(format="rgb24")`),
stacks them and lets torchvision crop and resize (bilinear, antialiased). Here FFmpeg does all of
it in C, one filter graph per clip window (crop -> scale -> RGB): only the crop box is read and
only the output size is converted, with no full-size RGB frame in between (a 16-frame 340x256
window to 224x224: ~7 ms -> ~3.5 ms of CPU, measured on the shared 2-core box).

Interpolation: swscale's bilinear widens its kernel when it shrinks (antialiased, like
torchvision's `antialias=True`). Grey frames stay within a few levels of the reference; colour
differs more because the reference converts 4:2:0 chroma at full size by repeating each chroma
sample (2x2 nearest) before resizing, where swscale interpolates chroma from its own plane (the
measured differences are in docs/scale.md, "Video loading"). FFmpeg's crop rounds the box down to the
chroma grid (4:2:0: even top, left, height and width; at most 1 px of 256 each): cut at an odd
offset, the cropped frame would pair each chroma sample with other luma pixels than the whole
frame does (measured: 3-6 levels mean, 52 max, against 0 for an even box, on a colour sinusoid).
"""

from fractions import Fraction

import numpy as np

# full_chroma_int: chroma interpolated to the output size before the RGB conversion (without it
# swscale repeats each output chroma sample over two columns). Planar RGB output (gbrp) would
# save the transpose after this, but this FFmpeg (8.0 in PyAV 18) writes garbage into the last
# columns of gbrp rows whose width is not a multiple of 16 (a 224x298 eval view, say).
SWS_FLAGS = "bilinear+full_chroma_int"


def on_chroma_grid(box: tuple, step: int = 2) -> tuple:
    """The box FFmpeg's crop cuts: top, left, height, width rounded down to multiples of the
    chroma subsampling (2 for 4:2:0 video; the reference path takes this box to compare)."""
    return tuple(v - v % step for v in box)


def _graph(frame, box, size):
    """A configured filter graph: buffer (frame's size and format) -> crop -> scale -> rgb24."""
    import av.filter

    top, left, height, width = box
    g = av.filter.Graph()
    g.threads = 1  # one clip's scaling is ~0.1 ms a frame: threads would cost more than they save
    nodes = [
        g.add_buffer(
            width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 1)
        ),
        g.add("crop", f"w={width}:h={height}:x={left}:y={top}"),  # rounded to the chroma grid
        g.add("scale", f"w={size[1]}:h={size[0]}:flags={SWS_FLAGS}"),
        g.add("format", "rgb24"),
        g.add("buffersink"),
    ]
    for a, b in zip(nodes, nodes[1:]):
        a.link_to(b)
    g.configure()
    return g


def crop_resize(frames: list, box: tuple, size: tuple, out: np.ndarray) -> None:
    """Write av.VideoFrames `frames` (all one size and format), each cut to `box` = (top, left,
    height, width) in source pixels and resized to `size` = (h, w), as RGB into `out` uint8
    (len(frames), h, w, 3)."""
    g = _graph(frames[0], box, size)
    for t, frame in enumerate(frames):
        g.vpush(frame)
        out[t] = g.vpull().to_ndarray()
