"""sha256 of a file that goes into a run's identity (e.g. finetune.init), read once per version."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ablations.errors import ConfigError


def file_sha256(path) -> str:
    """sha256 of a checkpoint file (read once per process per file version)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"finetune.init={str(path)!r}: no such file. Give a .pth checkpoint (ours: "
            "<run>/pretrain/encoder.pth; or an official Hiera MAE / finetuned checkpoint such as "
            "mae_hiera_base_224.pth, from the model zoo of github.com/facebookresearch/hiera)."
        )
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()
