"""Class-per-folder layouts shared by `imagefolder` and `video_folder`: <root>/{train,val}/<class>/...

The class list always comes from <root>/train, so label i means the same class in both splits
even when the val folder lacks a class (torchvision would otherwise renumber the val classes).
"""

import os


def split_dir(root, split: str, layout: str, dataset: str) -> str:
    """<root>/<split> as a path, or a FileNotFoundError naming the expected layout."""
    if root is None:
        raise ValueError(f"data.root is required for {dataset}; expected layout {layout}")
    path = os.path.join(os.path.expanduser(str(root)), split)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{dataset} root {path} not found; expected {layout}")
    return path


def class_names(root, layout: str, dataset: str) -> list[str]:
    """Sorted class folder names under <root>/train."""
    train = split_dir(root, "train", layout, dataset)
    classes = sorted(e.name for e in os.scandir(train) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{dataset}: no class folders in {train}; expected {layout}")
    return classes
