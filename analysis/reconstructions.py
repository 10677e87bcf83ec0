"""MAE reconstruction figure: a PNG grid with rows input / masked input / reconstruction, drawn
from the arrays training saves (<run>/pretrain/reconstructions.npz)."""

from __future__ import annotations

import os
import pathlib

import matplotlib

matplotlib.use("Agg")  # headless: runs on training nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ablations.store.atomic import atomic_path  # noqa: E402
from ablations.train.reconstructions import KINDS  # noqa: E402


def load_arrays(path: str | os.PathLike) -> dict:
    """{"input", "masked", "reconstruction"}: uint8 (n, H, W, 3) each; ValueError if damaged."""
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in KINDS}
    except Exception as e:  # a truncated zip, a missing key: the file is damaged
        raise ValueError(f"{path}: unreadable reconstructions ({type(e).__name__}: {e})") from None
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError(f"{path}: reconstructions of unexpected shapes {sorted(shapes)}")
    return arrays


def draw_reconstructions(arrays: dict, path: str | os.PathLike, n: int = 8) -> pathlib.Path:
    """Write a 3 x n grid of ``arrays`` (see load_arrays) to ``path`` (PNG, atomically)."""
    path = pathlib.Path(path)
    cols = min(n, len(arrays["input"]))
    fig, axes = plt.subplots(3, cols, figsize=(1.6 * cols, 1.6 * 3), squeeze=False)
    for r, title in enumerate(KINDS):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(arrays[title][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
