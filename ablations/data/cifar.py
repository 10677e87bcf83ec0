"""`cifar10` / `cifar100` through torchvision.datasets, with clear errors and no md5 on load.

torchvision 0.29 re-computes the md5 of every batch file each time a CIFAR dataset is built
(`_check_integrity` in `__init__`, and `_load_meta`), so a re-packed copy or the small fake
batches the tests write are rejected as "corrupted". The subclasses below only check that the
files exist; a truncated or malformed file still fails loudly (pickle error or a shape check,
reported with its path). Downloads keep torchvision's md5 check on the archive.
"""

import os

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100

from ablations.errors import ConfigError

from .common import input_hw, limit, opt
from .transforms import IMAGENET_MEAN, IMAGENET_STD, pil_image_transform


class _NoMD5:
    def _check_integrity(self) -> bool:
        return not self.missing_files()

    def missing_files(self) -> list[str]:
        names = [f for f, _ in self.train_list + self.test_list] + [self.meta["filename"]]
        paths = [os.path.join(self.root, self.base_folder, n) for n in names]
        return [p for p in paths if not os.path.isfile(p)]

    def _load_meta(self) -> None:
        import pickle

        with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class CIFAR10Files(_NoMD5, CIFAR10):
    """torchvision CIFAR10 without the per-load md5 check (see module docstring)."""


class CIFAR100Files(_NoMD5, CIFAR100):
    """torchvision CIFAR100 without the per-load md5 check (see module docstring)."""


_CLASSES = {"cifar10": (CIFAR10Files, 10), "cifar100": (CIFAR100Files, 100)}
NUM_CLASSES = {name: n for name, (_, n) in _CLASSES.items()}  # fixed by the files, not data.num_classes


def info(cfg: dict) -> dict:
    return {
        "num_classes": _CLASSES[cfg["name"]][1],
        "input_size": input_hw(cfg, 32),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "modality": "image",
    }


def _probe(cfg: dict):
    """An unloaded dataset object at data.root; ValueError / FileNotFoundError (naming the fix)
    when the root is unset or its files are missing and data.download is off."""
    cls = _CLASSES[cfg["name"]][0]
    root = cfg.get("root")
    if root is None:
        raise ValueError(
            f"data.root is required for {cfg['name']}: the folder that holds (or, with "
            f"data.download=true, will hold) {cls.base_folder}/"
        )
    probe = cls.__new__(cls)
    probe.root = os.path.expanduser(str(root))
    missing = probe.missing_files()
    if missing and not opt(cfg, "download", False):
        expected = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        raise FileNotFoundError(
            f"{cfg['name']} not found: missing {missing}. Expected <root>/{cls.base_folder}/"
            f"{{{', '.join(expected)}}} (torchvision's python-pickle layout) under root {root}. "
            f"Fix: set data.download=true to download it there, or point data.root at the folder "
            f"containing {cls.base_folder}/."
        )
    return probe


def check(cfg: dict, log=print) -> None:
    """Before any work: the root and its files (ConfigError naming the fix)."""
    try:
        _probe(cfg)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None


def build(cfg: dict, split: str, aug: dict | None):
    """torchvision CIFAR (train split = the 50k training batches, val = the test batch); items
    (float32 (3, H, W) normalised, int label). data.train_size / val_size cap the size."""
    cls, num_classes = _CLASSES[cfg["name"]]
    probe = _probe(cfg)
    download = bool(opt(cfg, "download", False))
    info_ = info(cfg)
    transform = pil_image_transform(info_["input_size"], IMAGENET_MEAN, IMAGENET_STD, aug, crop_pct=1.0)
    try:
        ds = cls(probe.root, train=split == "train", transform=transform, download=download)
    except (ValueError, KeyError, EOFError) as e:  # reshape / missing key / truncated pickle
        folder = os.path.join(probe.root, cls.base_folder)
        raise ValueError(
            f"malformed {cfg['name']} files under {folder}: {e}. Each batch must be a pickled dict with "
            "'data' (N x 3072 uint8) and 'labels' (cifar10) or 'fine_labels' (cifar100)."
        ) from e
    if len(ds.targets) != len(ds.data) or not all(0 <= t < num_classes for t in ds.targets):
        raise ValueError(
            f"malformed {cfg['name']} labels under {probe.root}: {len(ds.data)} images, "
            f"{len(ds.targets)} labels, expected labels in [0, {num_classes})"
        )
    ds.data = np.ascontiguousarray(ds.data)
    size = opt(cfg, "train_size" if split == "train" else "val_size", None)
    return limit(ds, size, seed=int(opt(cfg, "seed", 0)))
