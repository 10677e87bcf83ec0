"""Video loading speed: clips/s of the reference loader (decode from frame 0 for every clip) against
ours (seeking), alone and with repeated sampling, on generated Kinetics-like files.

    python -m analysis.bench_video [--videos 6] [--gops 250 30] [--rounds 4] [--repeated 4] [--profile]
    python -m analysis.bench_video --pixels   # swscale crop-resize against torchvision's, in levels
    python -m analysis.bench_video --profile --csv analysis/figures/bench/video_loading.csv
    python -m analysis.bench_video --pixels --csv analysis/figures/bench/video_pixels.csv

Files: H.264 (libx264, veryfast, crf 23, B-frames on), 10 s at 30 fps, 340x256 (Kinetics' usual
short side 256), a moving texture so the encoder has real motion to code. GOP 250 is what
x264 writes by default (the Kinetics downloaders re-encode with ffmpeg defaults: keyframes at 0
and 250 of 300 frames); GOP 30 is a one-second GOP as in re-encoded copies. Each item is one
training __getitem__ of video_folder (16 frames, stride 4, random resized crop to 224, flip,
normalise) on one torch thread, as in a DataLoader worker. Loaders run interleaved item by
item; clips per CPU-second (every thread of the process) is reported beside wall-clock clips/s
because the CPU time moves less when other jobs share the machine. The exact number of frames
each loader decodes per clip is printed too (independent of load). --profile adds where our
loader's CPU time goes per clip (cProfile on a CPU-time clock, one decoding thread). --pixels
compares our loader's crop-resize (swscale) with the reference (whole RGB frames, torchvision)
on the same frames and boxes, on the bench texture and on 1/f noise (natural images' spectrum).
--csv PATH also writes what it printed as a CSV headed by the command and date (with --profile,
the stages go to PATH's name + _stages.csv): docs/scale.md's tables are those files.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ablations.data import build_dataset
from ablations.data.transforms import IMAGENET_MEAN, IMAGENET_STD, VideoTransform
from ablations.data.video_folder import VideoFolder, clip_indices
from ablations.data.video_io import open_clip, reference_windows
from ablations.data.video_resize import on_chroma_grid
from ablations.store.measurements import write_measurements

PRETRAIN_AUG = {"rrc_scale": [0.5, 1.0], "hflip": 0.5}  # k400 presets' MAE pretraining aug


def write_video(path, frames, fps: int = 30, gop: int = 250, codec: str = "libx264") -> None:
    """Encode uint8 frames (N, H, W, 3) as H.264 (yuv420p; B-frames as x264 sets them)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "veryfast", "crf": "23", "sc_threshold": "0"}  # no extra scene-cut keys
        for frame in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def moving_texture(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (n, h, w, 3): a window panning over a random texture (real motion, ~2 MB per 10 s)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8)
    t = np.arange(n)
    ys = (h / 2 + h / 2 * np.sin(t / 40 + seed)).astype(int)
    xs = (w / 2 + w / 2 * np.cos(t / 55 + seed)).astype(int)
    return np.stack([tex[y : y + h, x : x + w] for y, x in zip(ys, xs)])


def pink_noise(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (n, h, w, 3): a window panning over 1/f noise, the power spectrum of natural images,
    with correlated channels (a shared luminance, weaker colour) as in natural video."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(2 * h)[:, None], np.fft.fftfreq(2 * w)[None]
    f = np.hypot(fy, fx)
    f[0, 0] = 1
    lum, u, v = (
        np.fft.ifft2(rng.normal(size=f.shape) / f + 1j * rng.normal(size=f.shape) / f).real for _ in range(3)
    )
    tex = np.stack([lum + 0.3 * u, lum + 0.3 * v, lum - 0.3 * u], -1)
    tex = np.clip((tex - tex.mean()) / tex.std() * 45 + 128, 0, 255).astype(np.uint8)
    t = np.arange(n)
    ys, xs = (
        (h / 2 + h / 2 * np.sin(t / 40 + seed)).astype(int),
        (w / 2 + w / 2 * np.cos(t / 55 + seed)).astype(int),
    )
    return np.stack([tex[y : y + h, x : x + w] for y, x in zip(ys, xs)])


def pixel_difference(path: str, clips: int = 8) -> dict[str, tuple[float, float]]:
    """{"train crops" | "eval views": (mean, max) |swscale - torchvision|} in levels of 255, over
    `clips` random 16x4 windows of the video at `path`: random resized crops (pretraining's scale)
    to 224, and the eval resize of the whole frame to the size covering 224."""
    train = VideoTransform((224, 224), IMAGENET_MEAN, IMAGENET_STD, PRETRAIN_AUG)
    out = {}
    with open_clip(path, threads=False) as clip:
        n, hw = clip.num_frames, clip.frame_size
        windows = [[clip_indices(s, 16, 4, n)] for s in torch.randint(0, n - 60, (clips,)).tolist()]
        for name, box, size in [("train crops", None, (224, 224)), ("eval views", (0, 0, *hw), None)]:
            diffs = []
            for w in windows:
                b = box or train.boxes(hw, 1)[0]
                s = size or VideoTransform((224, 224), IMAGENET_MEAN, IMAGENET_STD, None).out_size(hw)
                new = clip.read_windows(w, [b], s).int()
                diffs.append((new - reference_windows(clip.read, w, [on_chroma_grid(b)], s).int()).abs())
            d = torch.cat([x.flatten() for x in diffs]).float()
            out[name] = (float(d.mean()), float(d.max()))
    return out


PIXEL_COLUMNS = ["content", "train_mean", "train_max", "eval_mean", "eval_max"]


def pixels() -> list[list[str]]:
    """Print pixel_difference on the bench texture and on 1/f noise (GOP 30 files); returns the
    lines of PIXEL_COLUMNS (levels of 255)."""
    lines = []
    with tempfile.TemporaryDirectory() as root:
        for name, frames in [
            ("bench texture", moving_texture(90, 256, 340, 0)),
            ("1/f noise", pink_noise(90, 256, 340, 0)),
        ]:
            path = os.path.join(root, "clip.mp4")
            write_video(path, frames, gop=30)
            line = [name]
            for view, (mean, most) in pixel_difference(path).items():
                print(
                    f"{name:14s} {view:12s} |swscale - torchvision|: mean {mean:.2f}, max {most:.0f} (of 255)"
                )
                line += [f"{mean:.2f}", f"{most:.0f}"]
            lines.append(line)
    return lines


SPEED_COLUMNS = ["gop", "loader", "frames_per_clip", "clips_per_s", "clips_per_s_ratio", "clips_per_cpu_s",
                 "clips_per_cpu_s_ratio"]  # fmt: skip
STAGE_COLUMNS = ["gop", "repeated", "open_frame_index", "seek_decode", "crop_resize_rgb", "flip_normalise",
                 "other", "total"]  # fmt: skip
LOADERS = {"reference (decode from 0)": "reference", "ours (seek)": "ours, seek"}  # CSV names


def write_kinetics_like(root, videos: int, gop: int, seconds: int = 10, fps: int = 30) -> None:
    """<root>/train/<class>/clip<i>.mp4, two classes."""
    for i in range(videos):
        folder = os.path.join(root, "train", f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        frames = moving_texture(seconds * fps, 256, 340, seed=i)
        write_video(os.path.join(folder, f"clip{i}.mp4"), frames, fps=fps, gop=gop)


def reference_normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """The reference loader's normalisation of uint8 (C, T, H, W): one mixed-dtype addcmul from uint8."""
    view = (-1, 1, 1, 1)
    std = torch.tensor(std, dtype=torch.float64).view(view)
    scale = (1 / (255 * std)).float()
    shift = (-torch.tensor(mean, dtype=torch.float64).view(view) / std).float()
    return torch.addcmul(shift, x, scale)


class ReferenceVideoFolder(VideoFolder):
    """A reference loader, for the comparison: header frame count, then a second
    open that decodes from frame 0 up to the clip's last frame, for every clip; whole frames to
    RGB, torchvision's random resized crop and flip, its normalisation."""

    def __getitem__(self, index: int):
        import av

        path, y = self.clips[index]
        with av.open(path) as c:
            available = int(c.streams.video[0].frames)
        (window,) = self._indices(available)
        frames, last = {}, max(window)
        with av.open(path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(c.decode(stream)):
                if i in window:
                    frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
                if i >= last:
                    break
        clip = torch.stack([frames[min(i, max(frames))] for i in window])
        x, _ = self.transform.aug(clip)
        return reference_normalize(x.transpose(0, 1).contiguous(), self.transform.mean, self.transform.std), y


def frames_decoded(path: str, repeated: int, samples: int = 100) -> tuple[float, float]:
    """(reference, ours) frames decoded per 16x4 clip, averaged over random windows: exact counts,
    unlike the timings untouched by a busy machine. The reference decodes from frame 0 to each clip's end."""
    old = new = 0
    with open_clip(path, threads=False) as clip:
        n, span = clip.num_frames, 15 * 4 + 1
        clip.decoded = 0
        for _ in range(samples):
            starts = torch.randint(0, n - span + 1, (repeated,)).tolist()
            windows = [clip_indices(s, 16, 4, n) for s in starts]
            old += sum(max(w) + 1 for w in windows)
            clip.read([i for w in windows for i in w])
        new = clip.decoded
    return old / samples / repeated, new / samples / repeated


def loaders(root: str, repeated: int) -> dict:
    cfg = {"name": "video_folder", "root": root, "input_size": 224, "num_frames": 16, "frame_stride": 4}
    new = build_dataset(cfg, "train", aug=PRETRAIN_AUG)
    ref = ReferenceVideoFolder(new.clips, 16, 4, True, 1, new.transform)
    out = {"reference (decode from 0)": (ref, 1), "ours (seek)": (new, 1)}
    if repeated > 1:
        rep = build_dataset(cfg, "train", aug={**PRETRAIN_AUG, "repeated": repeated})
        out[f"ours + repeated {repeated}"] = (rep, repeated)
    for ds, _ in out.values():
        ds.threads = False  # as in a DataLoader worker (the reference loader always used FFmpeg's threads)
    return out


def bench(root: str, rounds: int, repeated: int) -> dict:
    """{loader name: (clips per wall second, clips per CPU second)} over `rounds` passes over the
    videos. Interleaved item by item, the loaders' order rotating, so load from other processes
    falls on all of them alike; CPU time (all of this process's threads) is the steadier measure
    on a shared machine."""
    runs = loaders(root, repeated)
    names = list(runs)
    wall, cpu, clips = (dict.fromkeys(names, 0.0) for _ in range(3))
    for ds, _ in runs.values():
        ds[0]  # warm up (imports, codec init)
    n = len(runs[names[0]][0])
    for r in range(rounds):
        for i in range(n):
            for k in range(len(names)):
                name = names[(i + r + k) % len(names)]
                ds, per_item = runs[name]
                t, c = time.perf_counter(), time.process_time()
                ds[i]
                wall[name] += time.perf_counter() - t
                cpu[name] += time.process_time() - c
                clips[name] += per_item
    return {name: (clips[name] / wall[name], clips[name] / cpu[name]) for name in names}


STAGES = {  # stage of our loader's __getitem__ -> (file, function) whose cumulative time it is
    "open + frame index": ("video_io.py", "__init__"),
    "seek + decode": ("video_io.py", "_read_seeking"),
    "crop + resize + RGB (swscale)": ("video_resize.py", "crop_resize"),
    "flip + normalise": ("transforms.py", "cropped"),
}


def profile(root: str, repeated: int, items: int = 12) -> dict[str, float]:
    """{stage: CPU ms per clip} of our loader (STAGES, "other" and "total"); `items` items."""
    cfg = {"name": "video_folder", "root": root, "input_size": 224, "num_frames": 16, "frame_stride": 4}
    ds = build_dataset(cfg, "train", aug={**PRETRAIN_AUG, "repeated": repeated})
    ds.threads = False
    ds[0]
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for i in range(items):
        ds[i % len(ds)]
    prof.disable()
    stats, clips = pstats.Stats(prof), items * repeated
    out = {
        stage: sum(
            cum
            for (path, _, fn), (_, _, _, cum, _) in stats.stats.items()
            if path.endswith(file) and fn == func
        )
        * 1000
        / clips
        for stage, (file, func) in STAGES.items()
    }
    total = stats.total_tt * 1000 / clips
    return {**out, "other": total - sum(out.values()), "total": total}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--gops", type=int, nargs="+", default=[250, 30])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeated", type=int, default=4)
    ap.add_argument("--profile", action="store_true", help="also: our loader's CPU ms per clip by stage")
    ap.add_argument(
        "--pixels", action="store_true", help="only: swscale vs torchvision crop-resize, in levels"
    )
    ap.add_argument("--csv", metavar="PATH", help="also write the table to this CSV (with --profile, "
                    "the stages to <PATH name>_stages.csv); docs/scale.md shows them")  # fmt: skip
    args = ap.parse_args(argv)
    command = " ".join(["python -m analysis.bench_video", *(sys.argv[1:] if argv is None else argv)])
    if args.pixels:
        lines = pixels()
        if args.csv:
            write_measurements(Path(args.csv), command, PIXEL_COLUMNS, lines)
        return
    speed_lines, stage_lines = [], []
    torch.set_num_threads(1)  # as in a DataLoader worker
    torch.manual_seed(0)
    print(f"{args.videos} videos, 10 s at 30 fps, 340x256 H.264; 16x4 clips at 224; {args.rounds} rounds")
    for gop in args.gops:
        with tempfile.TemporaryDirectory() as root:
            write_kinetics_like(root, args.videos, gop)
            rates = bench(root, args.rounds, args.repeated)
            first = os.path.join(root, "train", "class0", "clip0.mp4")
            counts = {r: frames_decoded(first, r) for r in sorted({1, args.repeated})}
            stages = {r: profile(root, r) for r in sorted({1, args.repeated})} if args.profile else {}
        base_wall, base_cpu = rates["reference (decode from 0)"]
        for name, (w, c) in rates.items():
            print(
                f"GOP {gop:4d}  {name:24s} {w:6.2f} clips/s (x{w / base_wall:.2f})"
                f"  {c:6.2f} clips/CPU-s (x{c / base_cpu:.2f})"
            )
        for r, (old, new) in counts.items():
            print(f"GOP {gop:4d}  frames decoded per clip, R={r}: reference {old:.0f}, ours {new:.0f}")
        for r, ms in stages.items():
            print(
                f"GOP {gop:4d}  our loader, R={r}, CPU ms per clip: "
                + ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
            )
            stage_lines.append([gop, r, *(f"{v:.1f}" for v in ms.values())])
        for name, (w, c) in rates.items():
            reps = args.repeated if name.startswith("ours + repeated") else 1
            frames = counts[1][0] if name.startswith("reference") else counts[reps][1]
            speed_lines.append([gop, LOADERS.get(name, f"ours, repeated {reps}"), f"{frames:.0f}", f"{w:.2f}",
                                f"{w / base_wall:.2f}x", f"{c:.2f}", f"{c / base_cpu:.2f}x"])  # fmt: skip
        if args.csv:  # after every GOP, so a stopped run keeps what it measured
            write_measurements(Path(args.csv), command, SPEED_COLUMNS, speed_lines)
            if stage_lines:
                path = Path(args.csv)
                write_measurements(
                    path.with_name(f"{path.stem}_stages.csv"), command, STAGE_COLUMNS, stage_lines
                )


if __name__ == "__main__":
    main()
