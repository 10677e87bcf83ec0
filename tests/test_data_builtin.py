"""The builtin synthetic datasets: determinism, shapes, balance, and that video labels need motion."""

import math

import pytest
import torch

from ablations.data import build_dataset, dataset_info
from ablations.data import builtin_video as bv
from ablations.data.builtin_image import render_image
from ablations.data.synthetic import Draws, Scene, item_generator
from ablations.data.transforms import parse_randaug

IMG = {"name": "builtin", "input_size": [32, 32], "train_size": 40, "val_size": 20}
VID = {"name": "builtin_video", "input_size": [32, 32], "num_frames": 4, "train_size": 20, "val_size": 10}
AUG = {"rrc_scale": [0.2, 1.0], "hflip": 0.5, "randaug": "rand-m9-mstd0.5-inc1"}


def test_info():
    i = dataset_info(IMG)
    assert (i["num_classes"], i["input_size"], i["modality"]) == (10, (32, 32), "image")
    assert len(i["mean"]) == len(i["std"]) == 3
    v = dataset_info(VID)
    assert v["modality"] == "video" and v["input_size"] == (4, 32, 32) and v["num_frames"] == 4


@pytest.mark.parametrize("cfg", [IMG, VID], ids=["image", "video"])
def test_deterministic_across_instances_and_calls(cfg):
    a, b = build_dataset(cfg, "val"), build_dataset(cfg, "val")
    for i in (0, 3, 7):
        assert torch.equal(a[i][0], a[i][0]) and torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1]
    # val and train, and another data seed, are different streams
    assert not torch.equal(a[0][0], build_dataset(cfg, "train")[0][0])
    assert not torch.equal(a[0][0], build_dataset({**cfg, "seed": 1}, "val")[0][0])


@pytest.mark.parametrize("cfg", [IMG, VID], ids=["image", "video"])
def test_render_cache_changes_nothing_but_time(cfg):
    # Cached items must equal fresh renders, survive augmentation untouched (no in-place op on
    # the cached tensor), and the byte budget must bound what is kept.
    aug = build_dataset(cfg, "train", aug=AUG)
    fresh = build_dataset(cfg, "train")
    fresh.cache.max_bytes = 0
    for _ in range(2):
        for i in (0, 5):
            aug[i]
    plain = build_dataset(cfg, "train")
    for i in (0, 5):
        assert torch.equal(plain[i][0], fresh[i][0])  # cached (2nd call) == rendered every time
        assert torch.equal(plain[i][0], fresh[i][0])
        assert torch.equal(aug.cache.items[i], plain.cache.items[i])  # augmenting left it intact
    assert fresh.cache.items == {} and fresh.cache.used == 0
    assert aug.cache.used == sum(t.numel() for t in aug.cache.items.values())


PINNED_SUM = 412665  # sum of item 0's uint8 pixels (train, seed 0, label 0, 32 px)


def test_image_pixels_pinned():
    # Item 0 must be the same on every machine and every version: pin a checksum of its pixels.
    # (If a deliberate change to the generator breaks this, update the number and say so.)
    img = render_image(0, "train", 0, 0, (32, 32))
    assert img.dtype == torch.uint8 and img.shape == (3, 32, 32)
    assert int(img.long().sum()) == PINNED_SUM


@pytest.mark.parametrize("size", [32, 48])
def test_image_shapes_labels_balance(size):
    ds = build_dataset({**IMG, "input_size": size}, "train", aug=AUG)
    x, y = ds[5]
    assert x.shape == (3, size, size) and x.dtype == torch.float32 and y == 5
    labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    assert labels.min() == 0 and labels.max() == 9
    assert torch.bincount(labels).tolist() == [4] * 10
    assert len(build_dataset(IMG, "val")) == 20


def test_video_shapes_and_views():
    x, y = build_dataset(VID, "train", aug=AUG)[3]
    assert x.shape == (3, 4, 32, 32) and x.dtype == torch.float32 and 0 <= y < 10
    x, y = build_dataset(VID, "val")[3]
    assert x.shape == (3, 4, 32, 32) and y == 3
    x, _ = build_dataset({**VID, "views": {"spatial": 3, "temporal": 2}}, "val")[3]
    assert x.shape == (6, 3, 4, 32, 32)
    # square frames: the three spatial crops are the same; the two temporal windows are not
    assert torch.equal(x[0], x[1]) and not torch.equal(x[0], x[3])


def test_video_first_frame_is_label_independent():
    """Frame 0 is a function of the seed only: rendered with every label it is bit-identical,
    so a single (first) frame carries no label information; later frames do differ."""
    for index in range(3):
        clips = [bv.render_clip(0, "train", index, label, (24, 24), 3) for label in range(10)]
        for c in clips[1:]:
            assert torch.equal(c[0], clips[0][0])
        moving = [c for c, m in zip(clips, bv.MOTIONS) if m != "static"]
        assert all(not torch.equal(c[1], clips[-1][1]) for c in moving)


def test_video_every_frame_has_the_same_marginal():
    """Last-frame object state (position, log-scale, angle) has the same mean/variance in every
    class as a uniform distribution. Fails if motion is not wrapped (a left-moving object would
    end up on the left, a growing one large)."""
    n, frames = 250, 8
    lo, hi = bv.LOG_SCALE
    for label, motion in enumerate(bv.MOTIONS):
        last = []
        for i in range(n):
            d = Draws(item_generator(0, "train", i))
            t = bv.trajectory(label, d, Scene(d), frames)
            last.append(
                [*t["center"][-1].tolist(), t["log_scale"][-1].item(), t["angle"][-1].item() % math.tau]
            )
        s = torch.tensor(last)
        uniform = [(-1, 1), (-1, 1), (lo, hi), (0, math.tau)]
        for j, (a, b) in enumerate(uniform):
            mean, sd = (a + b) / 2, (b - a) / math.sqrt(12)
            assert abs(s[:, j].mean() - mean) < 4.5 * sd / math.sqrt(n), (motion, j)
            assert abs(s[:, j].std() - sd) < 0.15 * sd, (motion, j)


def test_video_flip_mirrors_the_label():
    cfg = {**VID, "train_size": 10}
    flip = build_dataset(cfg, "train", aug={"rrc_scale": [1.0, 1.0], "hflip": 1.0})
    plain = build_dataset(cfg, "train", aug={"rrc_scale": [1.0, 1.0], "hflip": 0.0})
    names = bv.MOTIONS
    for i in range(10):
        (xf, yf), (xp, yp) = flip[i], plain[i]
        assert names[yf] == bv.HFLIP_LABEL.get(names[yp], names[yp])
        assert torch.allclose(xf, xp.flip(-1))


def test_normalisation_constants():
    x = torch.stack([build_dataset({**IMG, "val_size": 200}, "val")[i][0] for i in range(200)])
    m, s = x.mean((0, 2, 3)), x.std((0, 2, 3))
    assert m.abs().max() < 0.1 and (s - 1).abs().max() < 0.1  # normalised data is ~N(0, 1) per channel


def test_errors():
    with pytest.raises(ValueError, match="valid names"):
        dataset_info({"name": "imagenet22k"})
    with pytest.raises(ValueError, match="at most 10"):
        build_dataset({**IMG, "num_classes": 11}, "train")
    with pytest.raises(ValueError, match="split"):
        build_dataset(IMG, "test")
    with pytest.raises(ValueError, match="rand-"):
        parse_randaug("m9-mstd0.5")
    assert parse_randaug("rand-m7-n3-mstd0.5-inc1") == {"num_ops": 3, "magnitude": 7.0, "mstd": 0.5}
