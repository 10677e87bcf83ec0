"""Real-data loaders on tiny generated files: CIFAR pickles, an ImageFolder tree, video clips."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ablations.data import build_dataset, dataset_info
from ablations.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ablations.data.video_folder import clip_indices, temporal_starts

AUG = {"rrc_scale": [0.2, 1.0], "hflip": 0.5, "randaug": "rand-m9-mstd0.5-inc1"}


def _pixels(x):
    """Normalised float (3, ...) -> 0-255 scale, to compare with what was written."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, *[1] * (x.dim() - 1))
    std = torch.tensor(IMAGENET_STD).view(3, *[1] * (x.dim() - 1))
    return (x * std + mean) * 255


# ---------------------------------------------------------------- CIFAR


def _write_cifar(root, n=4, cifar100=False):
    """A fake CIFAR in torchvision's pickle layout, n images per file, each flat grey (2 * label)."""

    def batch(seed):
        labels = [(seed + i) % (100 if cifar100 else 10) for i in range(n)]
        data = np.repeat(np.array(labels, dtype=np.uint8)[:, None] * 2, 3072, axis=1)
        return {"data": data, ("fine_labels" if cifar100 else "labels"): labels}

    if cifar100:
        folder, files, meta = root / "cifar-100-python", ["train", "test"], ("meta", "fine_label_names", 100)
    else:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        folder, files, meta = root / "cifar-10-batches-py", names, ("batches.meta", "label_names", 10)
    folder.mkdir(parents=True)
    for k, name in enumerate(files):
        (folder / name).write_bytes(pickle.dumps(batch(k)))
    (folder / meta[0]).write_bytes(pickle.dumps({meta[1]: [f"c{i}" for i in range(meta[2])]}))
    return folder


def test_cifar10_reads_fake_batches(tmp_path):
    _write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path), "input_size": 32}
    assert dataset_info(cfg)["num_classes"] == 10
    train, val = build_dataset(cfg, "train", aug=AUG), build_dataset(cfg, "val")
    assert len(train) == 20 and len(val) == 4  # 5 batches of 4 / one test batch of 4
    x, y = val[3]  # test_batch is the 6th file written: labels (5 + i) % 10
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 8
    assert torch.allclose(_pixels(x), torch.full_like(x, 2 * y), atol=1.0)  # grey level 2 * label
    assert train[0][0].shape == (3, 32, 32)
    assert len(build_dataset({**cfg, "train_size": 7}, "train")) == 7


def test_cifar100_reads_fake_batches(tmp_path):
    _write_cifar(tmp_path, cifar100=True)
    cfg = {"name": "cifar100", "root": str(tmp_path)}
    assert dataset_info(cfg)["num_classes"] == 100
    x, y = build_dataset(cfg, "train")[2]
    assert x.shape == (3, 32, 32) and y == 2


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.download=true") as e:
        build_dataset({"name": "cifar10", "root": str(tmp_path)}, "train")
    assert "cifar-10-batches-py" in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(ValueError, match="data.root"):
        build_dataset({"name": "cifar10"}, "train")
    folder = _write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(
        pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    )
    with pytest.raises(ValueError, match="malformed cifar10"):
        build_dataset({"name": "cifar10", "root": str(tmp_path)}, "val")


# ---------------------------------------------------------------- ImageFolder


def _write_imagefolder(root, classes=("ant", "bee", "cat"), per_class=2, size=(20, 28)):
    for split in ("train", "val"):
        for y, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                img = np.full((*size, 3), 40 * y + i, np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")


def test_imagefolder(tmp_path):
    _write_imagefolder(tmp_path)
    cfg = {"name": "imagefolder", "root": str(tmp_path), "input_size": 16}
    info = dataset_info(cfg)
    assert info["num_classes"] == 3 and info["input_size"] == (16, 16) and info["modality"] == "image"
    train, val = build_dataset(cfg, "train", aug=AUG), build_dataset(cfg, "val")
    assert len(train) == len(val) == 6
    x, y = val[4]  # class "cat", image 0: grey level 80
    assert x.shape == (3, 16, 16) and y == 2
    assert torch.allclose(_pixels(x), torch.full_like(x, 80.0), atol=1.5)
    assert train[0][0].shape == (3, 16, 16)


def test_imagefolder_val_keeps_train_class_indices(tmp_path):
    _write_imagefolder(tmp_path)
    for f in (tmp_path / "val" / "ant").iterdir():
        f.unlink()
    (tmp_path / "val" / "ant").rmdir()
    val = build_dataset({"name": "imagefolder", "root": str(tmp_path), "input_size": 16}, "val")
    assert sorted({val[i][1] for i in range(len(val))}) == [1, 2]  # bee, cat keep their train indices


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train not found; expected <root>/train/<class>/<image>"):
        dataset_info({"name": "imagefolder", "root": str(tmp_path / "nope")})
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        dataset_info({"name": "imagefolder", "root": str(tmp_path)})
    (tmp_path / "train" / "a").mkdir()
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="no images"):
        build_dataset({"name": "imagefolder", "root": str(tmp_path)}, "val")


# ---------------------------------------------------------------- video_folder

FRAMES, H, W = 20, 24, 32  # frame i is flat grey 10 * i, so decoded values reveal the sampled indices


def _frame(i):
    return np.full((H, W, 3), 10 * i, np.uint8)


def _write_mp4(path):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"qscale": "1"}  # near-lossless, so grey levels survive
        for i in range(FRAMES):
            for p in s.encode(av.VideoFrame.from_ndarray(_frame(i), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def video_tree_cfg(root) -> dict:
    """The data config of the tree _write_video_tree makes: 4-frame clips, stride 2, 16 px."""
    return {"name": "video_folder", "root": str(root), "input_size": 16, "num_frames": 4, "frame_stride": 2}


def _write_video_tree(root, frames_folders=False):
    for split in ("train", "val"):
        for c in ("jump", "run"):
            (root / split / c).mkdir(parents=True)
            if frames_folders:
                clip = root / split / c / "clip0"
                clip.mkdir()
                for i in range(FRAMES):
                    Image.fromarray(_frame(i)).save(clip / f"img_{i:05d}.png")
            else:
                _write_mp4(root / split / c / "clip0.mp4")


def test_clip_sampling_helpers():
    assert clip_indices(3, 4, 2, 20) == [3, 5, 7, 9]
    assert clip_indices(0, 4, 4, 6) == [0, 4, 5, 5]  # short clip: repeat the last frame
    assert temporal_starts(20, 7, 1) == [6] and temporal_starts(20, 7, 3) == [0, 6, 13]
    assert temporal_starts(5, 7, 2) == [0, 0]


@pytest.mark.parametrize("frames_folders", [False, True], ids=["mp4", "frames"])
def test_video_folder(tmp_path, frames_folders):
    _write_video_tree(tmp_path, frames_folders)
    cfg = video_tree_cfg(tmp_path)
    info = dataset_info(cfg)
    assert info["num_classes"] == 2 and info["input_size"] == (4, 16, 16) and info["modality"] == "video"

    x, y = build_dataset(cfg, "val")[1]
    assert x.shape == (3, 4, 16, 16) and y == 1
    # centred window: span 7 of 20 frames -> start 6 -> frames 6, 8, 10, 12
    grey = _pixels(x).mean((0, 2, 3))
    assert torch.allclose(grey, torch.tensor([60.0, 80.0, 100.0, 120.0]), atol=4)

    x, _ = build_dataset({**cfg, "views": {"spatial": 3, "temporal": 3}}, "val")[0]
    assert x.shape == (9, 3, 4, 16, 16)
    starts = torch.stack([_pixels(v[:, 0]).mean() for v in x[::3]])  # first frame of each temporal view
    assert torch.allclose(starts, torch.tensor([0.0, 60.0, 130.0]), atol=4)

    x, y = build_dataset(cfg, "train", aug=AUG)[0]
    assert x.shape == (3, 4, 16, 16) and y == 0


def test_video_folder_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"video_folder root .*train not found; expected <root>/train"
    ):
        dataset_info({"name": "video_folder", "root": str(tmp_path)})
    (tmp_path / "train" / "jump").mkdir(parents=True)
    (tmp_path / "train" / "jump" / "readme.txt").write_text("no clips here")
    with pytest.raises(FileNotFoundError, match="no clips"):
        build_dataset({"name": "video_folder", "root": str(tmp_path)}, "train")
    (tmp_path / "train" / "jump" / "broken.mp4").write_bytes(b"not a video")
    ds = build_dataset({"name": "video_folder", "root": str(tmp_path)}, "train")
    with pytest.raises(RuntimeError, match="broken.mp4"):
        ds[0]
