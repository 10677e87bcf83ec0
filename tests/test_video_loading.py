"""Kinetics-scale video loading: seeking decode equals a full decode; swscale's crop-resize equals
torchvision's on the same frames (within a stated tolerance); repeated sampling (R clips per
decoded video) through the dataset, the collate and the training loop's batch arithmetic."""

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from ablations.data import build_dataset, flatten_repeated
from ablations.data.common import RepeatedItems, repeats
from ablations.data.transforms import IMAGENET_MEAN, IMAGENET_STD, VideoTransform, normalize
from ablations.study import config as C
from ablations.train.batching import plan_batch
from ablations.train.loop import fit

pytest.importorskip("av")

from ablations.data.video_io import VideoFile, open_clip, reference_windows  # noqa: E402
from ablations.data.video_resize import on_chroma_grid  # noqa: E402
from analysis.bench_video import frames_decoded, moving_texture, write_video  # noqa: E402
from tests.test_data_files import AUG, _pixels, _write_video_tree, video_tree_cfg  # noqa: E402


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    """100 frames of H.264 (B-frames on) with a keyframe every 25 frames."""
    path = tmp_path_factory.mktemp("h264") / "gop25.mp4"
    write_video(path, moving_texture(100, 48, 64, seed=1), fps=25, gop=25)
    return str(path)


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    """12 frames 64x96 of smooth moving colour (a sinusoid per channel), H.264, keyframe every 4:
    content where interpolation differences are small, unlike the noise texture."""
    yy, xx = np.mgrid[0:64, 0:96]
    frames = np.stack(
        [
            np.stack([128 + 100 * np.sin(xx / 9 + t / 3), 128 + 90 * np.cos(yy / 7 - t / 4),
                      128 + 80 * np.sin((xx + yy) / 13)], -1)
            for t in range(12)
        ]
    ).astype(np.uint8)  # fmt: skip
    path = tmp_path_factory.mktemp("smooth") / "smooth.mp4"
    write_video(path, frames, fps=25, gop=4)
    return str(path)


@pytest.mark.parametrize(
    "box, size",
    [
        ((4, 6, 40, 50), (40, 50)),  # no resize: equal (a width that is no multiple of 16)
        ((0, 0, 64, 96), (64, 96)),
        ((4, 6, 40, 50), (32, 32)),  # shrink
        ((3, 5, 41, 51), (32, 32)),  # odd box: cut on the chroma grid
        ((10, 20, 24, 30), (32, 32)),  # enlarge (small random resized crops)
        ((0, 0, 64, 96), (32, 48)),  # eval: whole frame to the size covering the crop
        ((0, 0, 64, 96), (224, 298)),
    ],
)
def test_swscale_windows_match_torchvision(smooth, box, size):
    windows = [[0, 2, 4, 6], [5, 7, 9, 11]]
    with open_clip(smooth) as clip:
        got = clip.read_windows(windows, [box, box], size)
        ref = reference_windows(clip.read, windows, [on_chroma_grid(box)] * 2, size)
    assert got.shape == ref.shape == (2, 4, 3, *size) and got.dtype == torch.uint8
    diff = (got.int() - ref.int()).abs().float()
    if size == box[2:]:
        assert diff.max() == 0  # same colour conversion, same pixels
    else:  # bilinear either way; swscale interpolates 4:2:0 chroma where the reference repeats it
        assert diff.mean() < 2.5 and diff.max() <= 24, (diff.mean(), diff.max())


def test_dataset_item_matches_the_reference_path(smooth, tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            shutil.copy(smooth, tmp_path / split / c / "clip.mp4")
    cfg = {
        "name": "video_folder",
        "root": str(tmp_path),
        "input_size": 32,
        "num_frames": 4,
        "frame_stride": 2,
    }
    aug = {"rrc_scale": [0.3, 1.0], "hflip": 0.5, "repeated": 3}
    for split, a, shape in [("train", aug, (3, 3, 4, 32, 32)), ("val", None, (3, 4, 32, 32))]:
        ds = build_dataset({**cfg, "views": {"temporal": 2}} if split == "val" else cfg, split, aug=a)
        torch.manual_seed(1)
        x, _ = ds[0]
        torch.manual_seed(1)  # the same draws: windows, boxes, flips
        with open_clip(ds.clips[0][0]) as clip:
            windows, hw = ds._indices(clip.num_frames), clip.frame_size
            boxes = [on_chroma_grid(b) for b in ds.transform.boxes(hw, len(windows))]
            ref = ds.transform.cropped(
                reference_windows(clip.read, windows, boxes, ds.transform.out_size(hw))
            )
        if split == "val":
            shape = (2, *shape)  # 2 temporal views
        assert x.shape == ref.shape == shape and x.dtype == torch.float32 and x.is_contiguous()
        levels = (_pixels(x.transpose(0, 1)) - _pixels(ref.transpose(0, 1))).abs()  # 0-255 scale
        assert levels.mean() < 2.5 and levels.max() < 25, (levels.mean(), levels.max())
        if split == "train":  # R distinct clips
            assert not any(torch.equal(x[i], x[j]) for i, j in [(0, 1), (0, 2), (1, 2)])


@pytest.mark.parametrize("threads", [False, True])
def test_seek_reads_the_frames_a_full_decode_gives(h264, monkeypatch, threads):
    with open_clip(h264, threads) as clip:
        assert clip.num_frames == 100 and clip.keyframes == [0, 25, 50, 75]
        full = clip.read_sequential(list(range(100)))
    wanted = [56, 60, 64, 68, 72, 76, 80, 84]  # a 8x4 clip in the middle, across a keyframe
    with open_clip(h264, threads) as clip:
        monkeypatch.setattr(clip, "_sequential", lambda i: pytest.fail("fell back to a full decode"))
        clip.skip_unwanted, clip.decoded = False, 0
        got = clip.read(wanted)
        # seeks to keyframe 50, decodes 50..72, seeks on to keyframe 75, decodes 75..84: 33 frames
        # where decoding from frame 0 takes 85
        assert clip.decoded == 23 + 10
        assert torch.equal(got, full[wanted])
        clip.skip_unwanted, clip.decoded = True, 0  # unwanted B-frames nothing refers to: skipped
        assert torch.equal(clip.read(wanted), full[wanted]) and len(wanted) <= clip.decoded < 33
        # any order, repeats, two far-apart windows and indices past the end
        idx = [90, 3, 3, 61, 120, 0, 99]
        assert torch.equal(clip.read(idx), full[[90, 3, 3, 61, 99, 0, 99]])
        # after the decoder was drained at the end of the stream, a later read seeks back
        assert torch.equal(clip.read([98, 99]), full[[98, 99]])
        assert torch.equal(clip.read([1, 2]), full[[1, 2]])


def test_repeated_windows_share_one_decode(h264):
    with open_clip(h264) as clip:
        full = clip.read_sequential(list(range(100)))
        clip.skip_unwanted, clip.decoded = False, 0
        windows = [list(range(s, s + 16, 4)) for s in (10, 12, 30, 80)]
        got = clip.read([i for w in windows for i in w])
        # keyframe 0 to 42 in one pass (30's keyframe 25 is behind: no seek), then seek 75..92
        assert clip.decoded == 43 + 18
        assert torch.equal(got, full[[i for w in windows for i in w]])


def test_video_without_timestamps_falls_back_to_sequential(h264):
    with open_clip(h264) as clip:
        clip.indexed = False
        full = clip.read_sequential(list(range(100)))
        assert torch.equal(clip.read([7, 70]), full[[7, 70]])
    assert isinstance(clip, VideoFile)


def test_video_folder_repeated_sampling(tmp_path):
    _write_video_tree(tmp_path)  # 20 flat-grey frames per clip, frame i = 10 * i
    cfg = video_tree_cfg(tmp_path)
    torch.manual_seed(0)
    ds = build_dataset(cfg, "train", aug={**AUG, "randaug": None, "repeated": 3})
    starts = set()
    for _ in range(4):
        x, y = ds[1]
        assert x.shape == (3, 3, 4, 16, 16) and torch.equal(y, torch.tensor([1, 1, 1]))
        for clip in x:  # each clip: 4 frames, stride 2 -> grey steps of 20
            grey = _pixels(clip).mean((0, 2, 3))
            assert torch.allclose(grey.diff(), torch.full((3,), 20.0), atol=4)
            starts.add(round(float(grey[0]) / 10))
    assert len(starts) > 2  # own random start per clip
    # val ignores repeated; R = 1 keeps the plain (C, T, H, W) item
    assert build_dataset(cfg, "val")[0][0].shape == (3, 4, 16, 16)
    assert build_dataset(cfg, "train", aug={**AUG, "repeated": 1})[0][0].shape == (3, 4, 16, 16)


def test_flatten_repeated_collate_and_wrapper():
    ds = RepeatedItems(build_dataset({"name": "builtin", "train_size": 8}, "train", aug=AUG), 2)
    x, y = ds[3]
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 3]
    assert not torch.equal(x[0], x[1])  # independent augmentations
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=flatten_repeated)
    xb, yb = next(iter(loader))
    assert xb.shape == (6, 3, 32, 32) and yb.tolist() == [0, 0, 1, 1, 2, 2]
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="aug.repeated must be an integer >= 1"):
            repeats({"repeated": bad})
    assert repeats(None) == 1 and repeats({"repeated": None}) == 1


class Indexed(torch.utils.data.Dataset):
    """Items (x (R, 4), y (R,)) that record which indices the loader asked for."""

    def __init__(self, n, r):
        self.n, self.r, self.seen = n, r, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.seen.append(i)
        return torch.randn(self.r, 4), torch.full((self.r,), i % 2)


def test_loop_batch_counts_clips(tmp_path):
    phase = {"epochs": 1, "batch_size": 8, "blr": 1e-3, "weight_decay": 0.0, "aug": {"repeated": 4}}
    ds, shapes = Indexed(32, 4), []

    def loss_fn(m, x, y):
        shapes.append(tuple(x.shape))
        return nn.functional.cross_entropy(m(x), y)

    rt = {"device": "cpu", "amp": "none", "tensorboard": False}
    out = fit(nn.Linear(4, 2), loss_fn, ds, None, phase, phase_dir=tmp_path, runtime=rt, progress=False)
    # 32 items x 4 clips; an epoch is 32 clips = 4 steps of 8 clips = 2 videos each
    assert out["steps_per_epoch"] == 4 and shapes == [(8, 4)] * 4
    assert len(ds.seen) == len(set(ds.seen)) == 8  # 8 distinct videos loaded, no more
    with pytest.raises(ValueError, match=r"batch 6 counts clips, 4 per video.*multiple of 4"):
        fit(nn.Linear(4, 2), loss_fn, ds, None, {**phase, "batch_size": 6}, phase_dir=tmp_path / "b",
            runtime=rt, progress=False)  # fmt: skip


def test_plan_batch_splits_in_items():
    # k400 pretraining: 512 clips per update, 4 per video, at most 8 clips per device
    assert plan_batch(512, 8, 8, repeated=4) == (8, 8)
    assert plan_batch(256, 8, 8, repeated=2) == (8, 4)  # finetuning
    assert plan_batch(12, 1, 2, repeated=4) == (4, 3)  # one video (4 clips) even above the cap
    assert plan_batch(32, 2, None, repeated=4) == (16, 1)


def test_bench_video_files_and_decode_counts(tmp_path):
    from analysis.bench_video import write_kinetics_like

    write_kinetics_like(tmp_path, videos=1, gop=30, seconds=3, fps=30)
    path = str(tmp_path / "train" / "class0" / "clip0.mp4")
    with open_clip(path) as clip:
        assert clip.num_frames == 90 and clip.keyframes == [0, 30, 60]
        assert clip.read([0]).shape == (1, 3, 256, 340)
    torch.manual_seed(0)
    old, new = frames_decoded(path, repeated=1, samples=10)
    # a 16x4 clip spans 61 frames: 16 wanted, others skipped where no frame refers to them
    assert 16 <= new < 61 < old <= 90


@pytest.mark.parametrize(
    "value, words",
    [
        (3, r"pretrain.batch_size=512 counts clips, 3 per video .*multiple of 3"),
        (0, r"pretrain.aug.repeated"),
    ],
)
def test_bad_repeated_stops_before_work(value, words):
    sel = C.Selection(preset="k400-b", step="f", sets={"data.root": "/tmp", "pretrain.aug.repeated": value})
    with pytest.raises(C.ConfigError, match=words):
        C.resolve(sel)


def test_repeated_clips_each_get_their_own_erased_box():
    tf = VideoTransform(
        (16, 16), IMAGENET_MEAN, IMAGENET_STD, {"rrc_scale": [1.0, 1.0], "hflip": 0.0, "reprob": 1.0}
    )
    clips = torch.full((3, 4, 3, 16, 16), 128, dtype=torch.uint8)
    x = tf.repeated(clips)
    assert x.shape == (3, 3, 4, 16, 16)
    clean = normalize(clips[0].transpose(0, 1), IMAGENET_MEAN, IMAGENET_STD, channel_dim=0)  # full crop
    boxes = [(x[r] != clean).any(0).any(0) for r in range(3)]  # (h, w) erased pixels per clip
    assert all(b.any() for b in boxes)  # every clip erased
    assert all(
        torch.equal((x[r] != clean).any(0)[t], boxes[r]) for r in range(3) for t in range(4)
    )  # one box per clip
    assert not (torch.equal(boxes[0], boxes[1]) and torch.equal(boxes[1], boxes[2]))  # own box each
