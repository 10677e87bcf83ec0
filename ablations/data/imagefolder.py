"""`imagefolder`: ImageNet layout <root>/{train,val}/<class>/<image> via torchvision ImageFolder."""

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from .common import input_hw, limit, opt
from .folders import class_names, split_dir
from .transforms import IMAGENET_MEAN, IMAGENET_STD, pil_image_transform

LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image> (e.g. n01440764/x.JPEG)"


class _FixedClasses(ImageFolder):
    """ImageFolder whose class -> index map is given (the train split's), not re-discovered."""

    def __init__(self, root, classes, **kw):
        self._classes = classes
        super().__init__(root, allow_empty=True, **kw)

    def find_classes(self, directory):
        return self._classes, {c: i for i, c in enumerate(self._classes)}


def info(cfg: dict) -> dict:
    return {
        "num_classes": len(class_names(cfg.get("root"), LAYOUT, "ImageFolder")),
        "input_size": input_hw(cfg, 224),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "modality": "image",
    }


def build(cfg: dict, split: str, aug: dict | None):
    """Items (float32 (3, H, W) normalised, int label). Eval: resize to size / 0.875, centre crop."""
    classes = class_names(cfg.get("root"), LAYOUT, "ImageFolder")
    path = split_dir(cfg.get("root"), split, LAYOUT, "ImageFolder")
    size = input_hw(cfg, 224)
    transform = pil_image_transform(size, IMAGENET_MEAN, IMAGENET_STD, aug, crop_pct=0.875)
    ds = _FixedClasses(path, classes, transform=transform)
    if len(ds) == 0:
        raise FileNotFoundError(
            f"ImageFolder: no images in {path}/<class>/ (classes from train: {classes[:5]}...); "
            f"expected {LAYOUT} with extensions {IMG_EXTENSIONS}"
        )
    return limit(
        ds, opt(cfg, "train_size" if split == "train" else "val_size", None), int(opt(cfg, "seed", 0))
    )
