"""Atomic file writes, the one place for them: readers see the old file or the new one, never half.

Each writer goes to a hidden temporary file beside the target (same filesystem), which is
fsynced, renamed over the target, and the folder is fsynced so the rename itself survives a
power cut. On any failure (disk full, read-only folder, a crash in the serializer) the temporary
file is removed and a WriteFailed names the target and the free space left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

# atomic_path's temporary names: .<stem>.<pid>.tmp<suffix>
TMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp(\.[^.]*)?$")


class WriteFailed(OSError):
    """A file could not be written; the message names it and the free space of its folder."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is durable enough
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free there"
    except OSError:
        return "free space unknown"


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path to write the content of `path` to; on success it replaces `path`.

    The temporary name keeps path's suffix (savefig picks the format from it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise WriteFailed(getattr(e, "errno", None) or 0, f"could not write {path}: {cause} "
                          f"({_free(path.parent)})") from e  # fmt: skip
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text or bytes to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def write_json_atomic(obj, path: Path) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=str))


def write_csv_atomic(frame, path: Path) -> None:
    """A results table (a pandas DataFrame) as the report's CSVs are written: no index, 4 decimals."""
    write_atomic(path, frame.to_csv(index=False, float_format="%.4f", lineterminator="\n"))


def save_torch_atomic(obj, path: Path) -> None:
    """torch.save atomically (a crash mid-write leaves the previous file intact)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def remove_orphans(folder: Path) -> list[Path]:
    """Delete the temporary files under `folder` that other processes left (a kill -9 during a
    save never reaches the cleanup). Call it only while holding the folder's lock: then no other
    live process writes there, so every temporary file not of this process is an orphan."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp*")):
        match = TMP_NAME.match(path.name)
        if match and int(match.group(1)) != os.getpid() and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
