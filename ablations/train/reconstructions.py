"""What the MAE reconstruction figure needs, saved when pretraining ends: the first n val items
as input / masked input / reconstruction, in RGB. analysis/reconstructions.py draws the figure.

    pretrain/reconstructions.npz   input, masked, reconstruction: uint8 (n, H, W, 3); video: frame 0
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ablations.store.atomic import write_atomic

FILE = "reconstructions.npz"
KINDS = ("input", "masked", "reconstruction")


def to_rgb(x: torch.Tensor, mean, std) -> np.ndarray:
    """(B, C, H, W) normalised -> uint8 (B, H, W, C); video (B, C, T, H, W) shows frame 0."""
    if x.dim() == 5:
        x = x[:, :, 0]
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    rgb = (x.float().cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1)
    return (rgb * 255).round().to(torch.uint8).numpy()


@torch.no_grad()
def reconstruction_arrays(mae, images: torch.Tensor, mean, std, keep: torch.Tensor | None = None) -> dict:
    """{"input", "masked", "reconstruction"}: uint8 (B, H, W, 3) for `images` (normalised, as the
    model sees them). `mae` is a pixel-target models.mae.MaskedAutoencoder; it runs in eval mode
    and is put back in its previous mode."""
    device = next(mae.parameters()).device
    was_training = mae.training
    mae.eval()
    try:
        masked, rec = mae.reconstruct(images.to(device), None if keep is None else keep.to(device))
    finally:
        mae.train(was_training)
    return {k: to_rgb(t, mean, std) for k, t in zip(KINDS, (images, masked, rec))}


def save_reconstruction_arrays(arrays: dict, path: Path) -> Path:
    """The arrays as one .npz, written atomically (a reader never sees half a file)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), buf.getvalue())
    return Path(path)


def grid(arrays: dict) -> np.ndarray:
    """One uint8 (3H, nW, 3) picture: input, masked and reconstruction rows (for TensorBoard)."""
    return np.concatenate([np.concatenate(list(arrays[k]), axis=1) for k in KINDS], axis=0)
