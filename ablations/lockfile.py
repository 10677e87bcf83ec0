"""The per-run lock: one process trains a run folder at a time, and a lock left by a dead holder
(a killed job, a failed node) is taken over instead of blocking the run forever.

Two layers, because each alone is not enough:
- an flock on <run>/.lock: exact on one machine (the kernel drops it when its holder dies, however
  it dies), but on a shared filesystem (NFS, Lustre, GPFS) flock may be local to each node or
  disabled, so two nodes can both "get" it;
- a record in the same file, written by the holder: host, pid, Slurm job id, start time. A process
  that got the flock still refuses the run if the record names a holder that is alive elsewhere:
  a Slurm job that squeue still lists as running (not our own job: a requeued job keeps its id), or
  a process on another host that it cannot check (the error names it, and the file to delete).
  A record whose holder is dead — same host (it would still hold the flock otherwise), or a job
  Slurm no longer runs — is stale and taken over.
The record is rewritten in place (truncate + write), not renamed: renaming would replace the inode
the flock is on. The holder empties it on release, so a record only survives a holder that died.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
# squeue states in which a job's processes may still be running.
JOB_ALIVE = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING"}


class RunLocked(RuntimeError):
    """Another process holds this run's lock."""


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


def read_record(folder: Path) -> dict | None:
    """The holder record in folder/.lock (None if empty, absent or half-written)."""
    try:
        text = (Path(folder) / LOCK).read_text()
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def slurm_job_state(job_id: str) -> str | None:
    """squeue's state of a job (RUNNING, PENDING, ...; None when squeue does not list it or fails)."""
    try:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    states = out.stdout.split()
    return states[0] if out.returncode == 0 and states else None


def holder_alive(record: dict, flock_free: bool) -> bool | None:
    """Whether the process a record names may still be training (None: cannot tell from here)."""
    if record.get("launcher") == "slurm" and record.get("job_id"):
        if record["job_id"] == current_job()[1]:
            return False  # our own job, requeued: its earlier incarnation is gone
        return slurm_job_state(record["job_id"]) in JOB_ALIVE
    if record.get("host") == platform.node():
        if flock_free:
            return False  # a live holder on this host would still hold the flock
        try:
            os.kill(int(record["pid"]), 0)
            return True
        except (ProcessLookupError, ValueError, TypeError):
            return False
        except PermissionError:
            return True
    return None


def describe(record: dict) -> str:
    job = f"{record['launcher']} job {record['job_id']}, " if record.get("job_id") else ""
    return f"{job}pid {record.get('pid')} on {record.get('host')} since {record.get('since')}"


@contextmanager
def locked(folder: Path, log=print):
    """Hold folder/.lock (flock + holder record) while training; RunLocked if a live process has it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644), "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{folder} is being trained by another process") from None
        try:
            old = read_record(folder)
            if old:
                alive = holder_alive(old, flock_free=True)
                if alive or alive is None:
                    fix = "" if alive else f"; if it is gone, delete {folder / LOCK}"
                    raise RunLocked(f"{folder} is being trained by {describe(old)}{fix}")
                log(f"[stale lock] {folder}: its holder ({describe(old)}) is gone; taking over")
            _rewrite(f, json.dumps(holder_record()))
            try:
                yield
            finally:
                _rewrite(f, "")
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _rewrite(f, text: str) -> None:
    f.seek(0)
    f.truncate()
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
