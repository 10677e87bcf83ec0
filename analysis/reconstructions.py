"""MAE reconstruction figure: a PNG grid with rows input / masked input / reconstruction."""

from __future__ import annotations

import os
import pathlib

import matplotlib

matplotlib.use("Agg")  # headless: runs on training nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # noqa: E402

from ablations.atomic import atomic_path  # noqa: E402


def _to_rgb(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(B, C, H, W) normalised -> (B, H, W, C) in [0, 1]; video (B, C, T, H, W) shows frame 0."""
    if x.dim() == 5:
        x = x[:, :, 0]
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float().cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1)


@torch.no_grad()
def save_reconstructions(
    mae,
    images: torch.Tensor,
    path: str | os.PathLike,
    n: int = 8,
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
    keep: torch.Tensor | None = None,
) -> pathlib.Path:
    """Write a 3 x n grid for the first n of ``images`` (normalised, as the model sees them).

    ``mae`` is a pixel-target :class:`models.mae.MaskedAutoencoder`; it runs in eval mode for the
    figure and is put back in its previous mode. The PNG is written to a temp file and renamed,
    so a reader never sees half a file.
    """
    path = pathlib.Path(path)
    images = images[:n]
    device = next(mae.parameters()).device
    was_training = mae.training
    mae.eval()
    try:
        masked, rec = mae.reconstruct(images.to(device), None if keep is None else keep[:n].to(device))
    finally:
        mae.train(was_training)
    rows = [_to_rgb(t, mean, std) for t in (images, masked, rec)]
    cols = images.shape[0]
    fig, axes = plt.subplots(3, cols, figsize=(1.6 * cols, 1.6 * 3), squeeze=False)
    for r, (title, imgs) in enumerate(zip(("input", "masked", "reconstruction"), rows)):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(imgs[c].numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
