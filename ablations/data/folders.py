"""Class-per-folder layouts shared by `imagefolder` and `video_folder`: <root>/{train,val}/<class>/...

The class list always comes from <root>/train, so label i means the same class in both splits
even when the val folder lacks a class (torchvision would otherwise renumber the val classes).

Links (docs/data.md, "Links"): inside a class folder, a link to a file is followed (the item is
read through it); a link to a folder is refused, naming the link and the fix. torchvision walks
class folders with os.walk(followlinks=True): a link `train/dog/up -> ..` made every cat image a
dog too (40x the samples, exit 0), and a link back to the root never ended the walk. A class
folder may itself be a link (datasets assembled from several disks), but not to the split folder
or one above it, nor to the same folder as another class. Each built split prints its items per
class, so a count that is off shows.
"""

import os

from ablations.errors import ConfigError, DataError

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


def check_root(cfg: dict, layout: str, dataset: str) -> None:
    """The root and its train/ and val/ folders exist (ConfigError naming the fix); what a preview
    (--dry-run) checks without reading the class folders."""
    root = cfg.get("root")
    if not root:
        raise ConfigError(
            f"Dataset {dataset!r} needs its folder: add --set data.root=/path/to/the/dataset ({layout})."
        )
    if not os.path.isdir(os.path.expanduser(str(root))):
        raise ConfigError(f"data.root={root} does not exist (or is not a folder); expected {layout}.")
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(os.path.expanduser(str(root)), split)):
            raise ConfigError(f"data.root={root} has no {split}/ folder; expected {layout}.")


def check_layout(
    cfg: dict, layout: str, dataset: str, is_item, what: str, log=print, recursive: bool = False
) -> dict[str, list[str]]:
    """The class folders of <root>/{train,val}, checked before any work; returns {split: [first
    item path per class]}. ConfigError (naming the fix) for a missing root or split, an empty class
    folder (it would still get a logit), a single class, val classes that train lacks (their items
    would be dropped), no val items, a link to a folder inside a class folder, or data.num_classes
    disagreeing with the folders; one line when val lacks some train classes. is_item(path) -> bool
    says what counts as an item; recursive: items in nested subfolders count (ImageFolder)."""
    check_root(cfg, layout, dataset)
    root = cfg["root"]
    classes, firsts, evaluated = {}, {}, set()
    for split in ("train", "val"):
        path = os.path.join(os.path.expanduser(str(root)), split)
        names = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
        try:
            items = scan_split(path, names, is_item, recursive)
        except LinkRefused as e:
            raise ConfigError(str(e)) from None
        empty = [c for c in names if not items[c]]
        if split == "train" and empty:
            raise ConfigError(
                f"{dataset}: {len(empty)} class folder(s) in {path} hold no {what}: {empty[:5]}. An empty "
                "class would still get a logit: remove the folder(s) or add items."
            )
        classes[split] = names
        firsts[split] = [items[c][0] for c in names if items[c]]
        evaluated = {c for c in names if items[c]}  # the last split: val
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


class LinkRefused(DataError):
    """A link in a class folder that would read items from outside it (or loop)."""


def _refuse(link: str, why: str) -> LinkRefused:
    return LinkRefused(
        f"{link} is a link to a folder ({why}); class folders may link to files, not folders. Replace "
        f"it by the files it should add (or links to them), or delete it: rm {link}"
    )


def _check_class_dirs(split_path: str, classes: list[str]) -> None:
    """A class folder that is a link must not reach the split folder (or above it), nor share its
    target with another class."""
    split_real, seen = os.path.realpath(split_path), {}
    for c in classes:
        folder = os.path.join(split_path, c)
        if not os.path.isdir(folder):
            continue
        real = os.path.realpath(folder)
        if split_real == real or split_real.startswith(real.rstrip(os.sep) + os.sep):
            raise _refuse(folder, f"it leads to {real}, which holds the class folders themselves")
        if real in seen:
            raise _refuse(folder, f"the same folder as class {seen[real]!r}: {real}")
        seen[real] = c


def class_items(folder: str, is_item, recursive: bool) -> list[str]:
    """The item paths of one class folder, in torchvision's order (sorted walk, sorted names);
    recursive: nested real subfolders too (ImageFolder), else its entries only (a video folder's
    clip files and frame folders). A link to a folder anywhere inside: LinkRefused."""
    if not recursive:
        names = sorted(os.listdir(folder))
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) and os.path.isdir(path):
                raise _refuse(path, f"to {os.path.realpath(path)}")
        return [os.path.join(folder, n) for n in names if is_item(os.path.join(folder, n))]
    items = []
    for here, dirs, files in sorted(os.walk(folder)):  # links to folders are listed, not walked
        for d in dirs:
            if os.path.islink(os.path.join(here, d)):
                raise _refuse(os.path.join(here, d), f"to {os.path.realpath(os.path.join(here, d))}")
        items += [os.path.join(here, f) for f in sorted(files) if is_item(os.path.join(here, f))]
    return items


def scan_split(split_path: str, classes: list[str], is_item, recursive: bool) -> dict[str, list[str]]:
    """{class: item paths} of one split (a class without a folder there: []), links checked."""
    _check_class_dirs(split_path, classes)
    out = {}
    for c in classes:
        folder = os.path.join(split_path, c)
        out[c] = class_items(folder, is_item, recursive) if os.path.isdir(folder) else []
    return out


def say_counts(dataset: str, split_path: str, items: dict[str, list[str]], what: str, log=print) -> None:
    """One line per split and process: its items per class (a link that pulled in other classes'
    items, or a copy gone wrong, shows as one count far off the others)."""
    counts = ", ".join(f"{c} {len(v)}" for c, v in items.items())
    if len(items) > 12:
        sizes = sorted(len(v) for v in items.values())
        counts = f"min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]} per class"
    total = sum(len(v) for v in items.values())
    say_once(("counts", split_path), f"[data] {dataset} {split_path}: {total} {what} in {len(items)} "
             f"classes ({counts})", log)  # fmt: skip
