"""Small helpers shared by the dataset builders: config lookups, fixed subsets, one-thread ops,
repeated sampling (R augmented copies of an item) and the collate that flattens it."""

import contextlib

import torch
from torch.utils.data import Dataset, Subset, default_collate


@contextlib.contextmanager
def single_thread():
    """Run torch ops on one thread. Rendering works on tensors of a few thousand elements, where
    intra-op parallelism never pays, and on a busy machine an op that does go parallel can wait
    ~20 ms for a second thread (measured: 2 ms -> 11 ms per 32 px image on 2 loaded cores).
    DataLoader workers already use one thread; this covers num_workers=0."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def opt(cfg: dict, key: str, default):
    """cfg[key], or `default` when the key is missing or null (the resolved schema writes nulls)."""
    value = cfg.get(key)
    return default if value is None else value


def input_hw(cfg: dict, default: int) -> tuple[int, int]:
    """data.input_size as (H, W): an int or a [H, W] list; `default` when unset."""
    size = opt(cfg, "input_size", default)
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"data.input_size must be an int or [H, W], got {cfg.get('input_size')!r}")
    return size


def views(cfg: dict) -> tuple[int, int]:
    """(spatial, temporal) evaluation views from data.views; (1, 1) when unset."""
    v = opt(cfg, "views", {})
    return int(opt(v, "spatial", 1)), int(opt(v, "temporal", 1))


def repeats(aug: dict | None) -> int:
    """aug.repeated: augmented copies per item in a training batch (1 when unset or no aug)."""
    r = opt(aug or {}, "repeated", 1)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"aug.repeated must be an integer >= 1 (1 = off), got {r!r}")
    return r


class RepeatedItems(Dataset):
    """Repeated sampling for datasets that cannot share work between copies: item i is R calls
    of ds[i] (each its own random augmentation) -> x (R, ...), y (R,) (labels may differ: the
    synthetic video set mirrors its label when a clip is flipped)."""

    def __init__(self, ds: Dataset, repeated: int):
        self.ds, self.repeated = ds, repeated

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        xs, ys = zip(*(self.ds[index] for _ in range(self.repeated)))
        return torch.stack(xs), torch.as_tensor(ys)


def flatten_repeated(batch):
    """DataLoader collate for repeated items: B items of (x (R, ...), y (R,)) -> x (B * R, ...),
    y (B * R,), the R copies of an item adjacent."""
    x, y = default_collate(batch)
    return x.flatten(0, 1), y.flatten()


def limit(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """At most n items of a real dataset: a fixed random subset (seeded, the same on every
    machine and every run), so small CPU runs on CIFAR/ImageNet see a representative sample.
    n=None keeps everything."""
    if n is None or n >= len(ds):
        return ds
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return Subset(ds, perm[:n].sort().values.tolist())


class GeneratedItems(Dataset):
    """Base of the built-in sets: `length` items, item i has label i % num_classes (exact class
    balance; the sampler shuffles) and rendered pixels cached in `self.cache`."""

    def __init__(self, num_classes: int, length: int):
        self.num_classes, self.length, self.cache = num_classes, length, RenderCache()

    def __len__(self) -> int:
        return self.length

    def label(self, index: int) -> int:
        """Label of item `index`; IndexError outside [0, length) (ends iteration in `for x in ds`)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        return index % self.num_classes


class RenderCache:
    """Memo of rendered synthetic items (uint8 tensors) by index, up to `max_bytes`.

    Rendering an item is a pure function of (seed, split, index), so caching changes nothing but
    time: at 32 px a render costs ~0.6 ms against ~0.15 ms for the augmentation, about a third of
    a cpu-preset epoch (measured on the 2-core box). Items past the budget are rendered every
    time. Each DataLoader worker holds its own cache; the default budget keeps the cpu preset's
    sets (6 MB images, 25 MB clips) whole."""

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes, self.used, self.items = max_bytes, 0, {}

    def get(self, index: int, render):
        """The cached item `index`, or `render()` (stored if it fits in the budget)."""
        item = self.items.get(index)
        if item is None:
            item = render()
            size = item.numel() * item.element_size()
            if self.used + size <= self.max_bytes:
                self.items[index] = item
                self.used += size
        return item
