"""Errors whose message already says what to do: the CLI prints them in one line, no traceback.

Every failure is one of two kinds, and the message says which, so that nobody reruns in vain:
    transient      the environment failed (disk full, preemption, a lost node): the same command
                   resumes once it is back
    deterministic  the config or the data cannot work: rerunning as is fails the same way
"""

from __future__ import annotations

import errno
from pathlib import Path

TRANSIENT, DETERMINISTIC = "transient", "deterministic"
# OS errors that go away by themselves or once space is freed; every other errno needs a fix
# (a read-only folder, a file where a folder should be, a missing file).
TRANSIENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
    errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ESTALE, errno.EAGAIN,
}  # fmt: skip
# torch.distributed's errors when a node or the network goes away (by name: no torch down here)
LOST_NODE = ("DistNetworkError", "DistStoreError", "DistBackendError")


class ConfigError(ValueError):
    """A bad preset, row, table, key, value or data folder, found before any work; exit status 2."""

    kind = DETERMINISTIC


class RunError(RuntimeError):
    """A run cannot go on as it is (e.g. every checkpoint of a phase is damaged)."""

    kind = DETERMINISTIC


class TransientError(RunError):
    """A run stopped for a reason outside it (a lost node, a preemption): rerunning resumes it."""

    kind = TRANSIENT


class DataError(RunError):
    """An item of the dataset cannot be read; the message names its file."""


def kind_of(e: BaseException) -> str:
    """TRANSIENT or DETERMINISTIC. Unknown exceptions are deterministic: a bug or a config the
    model cannot take fails the same way on every rerun."""
    if isinstance(e, KeyboardInterrupt):  # Ctrl-C, SIGTERM, Slurm's preemption signal
        return TRANSIENT
    if type(e).__name__ in LOST_NODE:
        return TRANSIENT
    if isinstance(e, OSError) and not isinstance(getattr(e, "kind", None), str):
        return TRANSIENT if e.errno in TRANSIENT_ERRNOS or isinstance(e, TimeoutError) else DETERMINISTIC
    return getattr(e, "kind", DETERMINISTIC)


def advice(kind: str, fix: str = "") -> str:
    """What to do next, for a failure of this kind; fix: what to change first (may be empty)."""
    if kind == TRANSIENT:
        return f"{fix + ', then r' if fix else 'R'}erun the same command to resume (transient)."
    return (
        f"{fix + '; r' if fix else 'Fix the cause; r'}erunning as is will fail the same way (deterministic)."
    )


def os_fix(e: OSError, folder: str = "the runs folder") -> str:
    """The fix for an environment fault, in a few words naming the path."""
    where = getattr(e, "filename", None) or folder
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"Make {where} writable, or pass --runs-dir with a writable folder"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Free some space on the disk of {where}, or pass --runs-dir on another disk"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        file = next((p for p in Path(where).parents if p.exists() and not p.is_dir()), where)
        return f"{file} is a file where a folder must be: move it, or pass --runs-dir with a folder"
    return f"Fix {where} ({e.strerror or e})" if where else ""
