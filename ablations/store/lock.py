"""The one file lock of the project: exclusive, non-blocking, and a lock left by a dead holder (a
killed job, a failed node) is taken over instead of blocking the run forever.

    with exclusive(folder / ".lock"):   # RunLocked if a live process holds it
        ...

Two layers, because each alone is not enough:
- an OS lock on the file: an flock on POSIX (an msvcrt lock on its first byte on Windows, so the
  CLI imports everywhere). Exact on one machine — the kernel drops it when its holder dies,
  however it dies — but on a shared filesystem (NFS, Lustre, GPFS) flock may be local to each
  node or disabled, so two nodes can both "get" it;
- a record in the same file, written by the holder: host, pid, Slurm job id, start time. A process
  that got the OS lock still refuses if the record names a holder alive elsewhere: a Slurm job
  squeue lists as running (not its own job: a requeued job keeps its id), or a process on another
  host it cannot check (the message names it, and the file to delete). A record whose holder is
  dead — on this host (it would still hold the OS lock otherwise), or a job Slurm no longer runs —
  is stale and taken over, with a `[stale lock]` line.
The record is rewritten in place (truncate + write), never renamed: a rename would replace the
inode the flock is on. The holder empties it on release, so a record only outlives a holder that
died. `--status` (ablations/study/status.py) reads the same records.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

# squeue states in which a job's processes may still be running.
JOB_ALIVE = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING"}


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
def exclusive(path: Path, holder: str = "another process", log=print):
    """Hold an exclusive lock on `path` (created with its folder if missing) for the block, with
    this process's record in it. RunLocked if a live process holds it; an OSError if the folder is
    not writable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+") as f:
        if not _acquire(f):  # the record names the live holder (it may still be writing it)
            record = read_record(path)
            raise RunLocked(f"{path.parent} is held by {describe(record) if record else holder}")
        try:
            old = read_record(path)
            if old:
                alive = holder_alive(old, lock_free=True)
                if alive or alive is None:
                    fix = "" if alive else f"; if it is gone, delete {path}"
                    raise RunLocked(f"{path.parent} is held by {describe(old)}{fix}")
                log(f"[stale lock] {path.parent}: its holder ({describe(old)}) is gone; taking over")
            _rewrite(f, json.dumps(holder_record()))
            try:
                yield
            finally:
                _rewrite(f, "")
        finally:
            _release(f)


def _rewrite(f, text: str) -> None:
    f.seek(0)
    f.truncate()
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


# ----------------------------------------------------------------------------- holder records


def current_job() -> tuple[str | None, str | None]:
    """(launcher, job id) of the cluster job this process runs in, or (None, None)."""
    if os.environ.get("SLURM_JOB_ID"):
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        return "slurm", f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    if os.environ.get("SUBMITIT_LOCAL_JOB_ID"):
        return "local", os.environ["SUBMITIT_LOCAL_JOB_ID"]
    return None, None


def holder_record() -> dict:
    launcher, job_id = current_job()
    return {"host": platform.node(), "pid": os.getpid(), "launcher": launcher, "job_id": job_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip


def read_record(path: Path) -> dict | None:
    """The holder record in a lock file (None if empty, absent, unreadable or half-written)."""
    try:
        text = Path(path).read_text()
        record = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def slurm_job_state(job_id: str) -> str | None:
    """squeue's state of a job (RUNNING, PENDING, ...; None when squeue does not list it or fails)."""
    try:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    states = out.stdout.split()
    return states[0] if out.returncode == 0 and states else None


def holder_alive(record: dict, lock_free: bool) -> bool | None:
    """Whether the process a record names may still hold the lock (None: cannot tell from here).
    lock_free: this process holds the OS lock, so no live process on this host does."""
    if record.get("launcher") == "slurm" and record.get("job_id"):
        if record["job_id"] == current_job()[1]:
            return False  # our own job, requeued: its earlier incarnation is gone
        return slurm_job_state(record["job_id"]) in JOB_ALIVE
    if record.get("host") == platform.node():
        if lock_free:
            return False
        try:
            os.kill(int(record["pid"]), 0)
            return True
        except (ProcessLookupError, ValueError, TypeError, KeyError):
            return False
        except PermissionError:
            return True
    return None


def describe(record: dict) -> str:
    job = f"{record['launcher']} job {record['job_id']}, " if record.get("job_id") else ""
    return f"{job}pid {record.get('pid')} on {record.get('host')} since {record.get('since')}"
