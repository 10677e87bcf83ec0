"""`imagefolder`: ImageNet layout <root>/{train,val}/<class>/<image> via torchvision ImageFolder.

Links inside a class folder: to a file followed, to a folder refused (ablations/data/folders.py,
docs/data.md). Building a split prints its images per class."""

import os

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from ablations.errors import DataError

from .common import input_hw, limit, opt
from .folders import check_layout, class_names, say_counts, say_once, scan_split, split_dir
from .transforms import IMAGENET_MEAN, IMAGENET_STD, pil_image_transform

LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image> (e.g. n01440764/x.JPEG)"


class _FixedClasses(ImageFolder):
    """ImageFolder whose class -> index map is given (the train split's), not re-discovered, and
    whose unreadable images name themselves (or, with skip_corrupt, are skipped and counted)."""

    def __init__(self, root, classes, skip_corrupt: bool = False, **kw):
        self._classes, self.skip_corrupt, self.skipped = classes, skip_corrupt, 0
        super().__init__(root, allow_empty=True, **kw)

    def find_classes(self, directory):
        return self._classes, {c: i for i, c in enumerate(self._classes)}

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        """torchvision's walk, order and item test, except for links: files are followed, folders
        refused (folders.class_items; torchvision follows every link, loops included)."""
        items = scan_split(str(directory), self._classes, _is_image, recursive=True)
        say_counts("ImageFolder", str(directory), items, "images")
        return [(path, class_to_idx[c]) for c, paths in items.items() for path in paths]

    def __getitem__(self, index: int):
        for attempt in range(len(self)):  # with skip_corrupt: the next readable image
            i = (index + attempt) % len(self)
            try:
                return super().__getitem__(i)
            except (OSError, ValueError, SyntaxError) as e:  # PIL: unidentified, truncated, bad header
                path = self.samples[i][0]
                if not self.skip_corrupt:
                    raise DataError(
                        f"cannot read image {path} ({type(e).__name__}: {e}). Fix or delete it, or "
                        "--set data.skip_corrupt=true to skip unreadable images."
                    ) from None
                self.skipped += 1
                say_once(("corrupt", path), f"[data] skipped unreadable image {path} "
                         f"({self.skipped} skipped so far in this process; data.skip_corrupt)")  # fmt: skip
        raise DataError(f"no readable image in {self.root}")


def _is_image(path: str) -> bool:
    return os.path.isfile(path) and has_file_allowed_extension(path, IMG_EXTENSIONS)


def check(cfg: dict, log=print) -> None:
    """Before any work: the folder layout (folders.check_layout), and one line when the images
    are not the input size (they are resized to it)."""
    first = check_layout(cfg, LAYOUT, "ImageFolder", _is_image, "images", log, recursive=True)["train"][0]
    try:
        with Image.open(first) as im:
            w, h = im.size
    except OSError:
        return  # named when it is loaded
    size = input_hw(cfg, 224)
    if (h, w) != size:
        say_once(("resize", cfg["root"]), f"[data] images under {cfg['root']} are {w}x{h} px (e.g. {first}); "
                 f"they are resized and cropped to {size[1]}x{size[0]} (data.input_size)", log)  # fmt: skip


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
    ds = _FixedClasses(path, classes, bool(opt(cfg, "skip_corrupt", False)), transform=transform)
    if len(ds) == 0:
        raise FileNotFoundError(
            f"ImageFolder: no images in {path}/<class>/ (classes from train: {classes[:5]}...); "
            f"expected {LAYOUT} with extensions {IMG_EXTENSIONS}"
        )
    return limit(
        ds, opt(cfg, "train_size" if split == "train" else "val_size", None), int(opt(cfg, "seed", 0))
    )
