"""The one file lock of the project: exclusive, non-blocking, released when the process dies.

On POSIX it is an flock on the lock file; on Windows an msvcrt lock on its first byte, so the
CLI imports everywhere. Extend here (e.g. stale-lock handling for shared filesystems), not at
the call sites.

    with exclusive(folder / ".lock"):   # RunLocked if another process holds it
        ...
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


class RunLocked(RuntimeError):
    """Another process holds this lock."""


def _acquire(f) -> bool:
    """True if this process now holds the lock, False if another one does."""
    if fcntl is not None:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _release(f) -> None:
    if fcntl is not None:
        fcntl.flock(f, fcntl.LOCK_UN)
    else:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


@contextmanager
def exclusive(path: Path, holder: str = "another process"):
    """Hold an exclusive lock on `path` (created with its folder if missing) for the block.
    RunLocked if someone else holds it; an OSError if the folder is not writable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        if not _acquire(f):
            raise RunLocked(f"{path.parent} is held by {holder}")
        try:
            yield
        finally:
            _release(f)
