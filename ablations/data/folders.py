"""Class-per-folder layouts shared by `imagefolder` and `video_folder`: <root>/{train,val}/<class>/...

The class list always comes from <root>/train, so label i means the same class in both splits
even when the val folder lacks a class (torchvision would otherwise renumber the val classes).
"""

import os

from ablations.errors import ConfigError

_SAID: set = set()  # one-line notes already printed in this process


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


def say_once(key, message: str, log=print) -> None:
    """Print a one-line note once per process (a data fact worth knowing, not an error)."""
    if key not in _SAID:
        _SAID.add(key)
        log(message)


def check_layout(cfg: dict, layout: str, dataset: str, is_item, what: str, log=print) -> dict[str, list[str]]:
    """The class folders of <root>/{train,val}, checked before any work; returns {split: [first
    item path per class]}. ConfigError (naming the fix) for a missing root or split, an empty class
    folder (it would still get a logit), a single class, val classes that train lacks (their items
    would be dropped), no val items, or data.num_classes disagreeing with the folders; one line
    when val lacks some train classes. is_item(path) -> bool says what counts as an item."""
    root = cfg.get("root")
    if not root:
        raise ConfigError(
            f"Dataset {dataset!r} needs its folder: add --set data.root=/path/to/the/dataset ({layout})."
        )
    if not os.path.isdir(os.path.expanduser(str(root))):
        raise ConfigError(f"data.root={root} does not exist (or is not a folder); expected {layout}.")
    classes, firsts = {}, {}
    for split in ("train", "val"):
        path = os.path.join(os.path.expanduser(str(root)), split)
        if not os.path.isdir(path):
            raise ConfigError(f"data.root={root} has no {split}/ folder; expected {layout}.")
        names = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
        items = {c: sorted(n for n in os.listdir(os.path.join(path, c)) if is_item(os.path.join(path, c, n)))
                 for c in names}  # fmt: skip
        empty = [c for c in names if not items[c]]
        if split == "train" and empty:
            raise ConfigError(
                f"{dataset}: {len(empty)} class folder(s) in {path} hold no {what}: {empty[:5]}. An empty "
                "class would still get a logit: remove the folder(s) or add items."
            )
        classes[split] = names
        firsts[split] = [os.path.join(path, c, items[c][0]) for c in names if items[c]]
    train, val = classes["train"], classes["val"]
    if len(train) < 2:
        raise ConfigError(
            f"{dataset}: {root}/train has {len(train)} class folder(s): a classifier needs 2 or more."
        )
    extra = sorted(set(val) - set(train))
    if extra:
        raise ConfigError(
            f"{dataset}: {root}/val has classes that train/ lacks: {extra[:5]}; their {what} would be "
            "dropped from evaluation. Add them to train/ or remove them from val/."
        )
    if not firsts["val"]:
        raise ConfigError(f"{dataset}: {root}/val holds no {what}; expected {layout}.")
    evaluated = {os.path.basename(os.path.dirname(p)) for p in firsts["val"]}
    lacking = [c for c in train if c not in evaluated]
    if lacking:
        note = f"[data] {root}/val has no {what} for {len(lacking)} of {len(train)} classes "
        say_once(("val-lacks", root), note + f"(e.g. {lacking[:3]}): trained, but not evaluated", log)
    expected = cfg.get("num_classes")
    if expected is not None and expected != len(train):
        raise ConfigError(
            f"data.num_classes={expected} but {root}/train has {len(train)} class folders: "
            f"--set data.num_classes={len(train)}, or point data.root at the intended dataset."
        )
    return firsts
