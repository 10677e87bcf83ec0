"""Datasets for the ablation harness (contract: ablations/CONTRACTS.md, "data").

    info = dataset_info(data_cfg)   # {"num_classes", "input_size", "mean", "std", "modality"}
    ds = build_dataset(data_cfg, split="train" | "val", aug=aug_cfg_or_None)
    x, y = ds[i]                    # x float32 normalised: (C, H, W) image, (C, T, H, W) video,
                                    # (V, C, T, H, W) video val with views.spatial * temporal > 1

Repeated sampling: a training aug with repeated = R > 1 makes train items (x (R, ...), y (R,)),
R augmented copies (video_folder: R clips of one decoded video); a DataLoader with
collate_fn=flatten_repeated turns B of them into a batch of B * R.

input_size is (H, W) for images and (T, H, W) for video (video info also has "num_frames").
Names: builtin, builtin_video (synthetic, generated on the fly, seeded by data.seed, default 0),
cifar10, cifar100, imagefolder, video_folder (files under data.root).
"""

from . import builtin_image, builtin_video, cifar, imagefolder, video_folder
from .common import RepeatedItems, flatten_repeated, repeats
from .folders import check_root

DATASETS = {
    "builtin": builtin_image,
    "builtin_video": builtin_video,
    "cifar10": cifar,
    "cifar100": cifar,
    "imagefolder": imagefolder,
    "video_folder": video_folder,
}


def _module(data_cfg: dict):
    name = data_cfg.get("name")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset data.name={name!r}; valid names: {sorted(DATASETS)}")
    return DATASETS[name]


def dataset_info(data_cfg: dict) -> dict:
    """{"num_classes": int, "input_size": (H, W) or (T, H, W), "mean": (3,), "std": (3,),
    "modality": "image" | "video"} (+ "num_frames" for video). For real datasets the class count
    comes from the data on disk, not from data.num_classes."""
    return _module(data_cfg).info(data_cfg)


def check_data(data_cfg: dict, log=print) -> None:
    """Before any work: ConfigError (naming the fix) for data that cannot train as configured,
    one-line notes for surprises (resized images, val classes without items). Datasets without
    files to check pass."""
    check = getattr(_module(data_cfg), "check", None)
    if check is not None:
        check(data_cfg, log)


def check_data_quick(data_cfg: dict) -> None:
    """What a preview (--dry-run) checks of a data.root that is given: the folder and its layout,
    without scanning the class folders (a million images take a while; check_data does that
    before training). A recipe previewed without its data (root null) passes."""
    module = _module(data_cfg)
    if not data_cfg.get("root"):
        return
    if hasattr(module, "LAYOUT"):  # read from class folders
        check_root(data_cfg, module.LAYOUT, data_cfg["name"])
    elif getattr(module, "check", None) is not None:  # CIFAR: a few file names
        module.check(data_cfg, lambda *a, **k: None)


def build_dataset(data_cfg: dict, split: str, aug: dict | None = None):
    """A map-style Dataset of (x, y). split: "train" | "val". aug: the phase's aug dict
    (rrc_scale, hflip, randaug, optional reprob, optional repeated) for training, None for
    evaluation."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    module, repeated = _module(data_cfg), repeats(aug) if split == "train" else 1
    ds = module.build(data_cfg, split, aug)
    if repeated > 1 and not getattr(module, "REPEATS_NATIVELY", False):
        ds = RepeatedItems(ds, repeated)
    return ds


__all__ = ["DATASETS", "build_dataset", "check_data", "check_data_quick", "dataset_info", "flatten_repeated",
           "repeats"]  # fmt: skip
