"""`ablate.py <selection> --status`: where each run of a selection stands.

    finished     metrics.json written (its top-1 and the build that trained it: commit, dirty tree)
    running      a live process holds the run lock (its job id or pid, phase, epoch/step from log.jsonl),
                 or its job is running and starting up
    queued       its job waits in the Slurm queue (with squeue's reason)
    failed       its last attempt failed: transient (rerun to resume) or deterministic (fix first),
                 from <run>/failed.json, else the error's last line in the job's logs
    stopped      started, not running, no error (resumable: the same command continues it)
    trained      every phase done but metrics.json missing or unreadable (the same command rebuilds it)
    changed      config.yaml differs from this selection's config (--force retrains)
    damaged      identity.json and config.yaml unreadable or not a run's: what it trained is unknown
    not started  no folder yet

A dead job is never "running": a lock record counts only while its holder is alive (see
ablations/store/lock.py), and a job only while squeue lists it as queued or running.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

from ablations.store.lock import JOB_ALIVE, describe, holder_alive, read_record, slurm_job_state
from ablations.study import failure, homes
from ablations.study import runs as R
from ablations.study import sweep as W
from ablations.study.identity import run_identity
from ablations.study.provenance import build_flags, build_label

QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"}
PHASES = ("pretrain", "finetune", "supervised")


def jobs_record(folder: Path) -> dict | None:
    """<run>/slurm/job.json: the latest job submitted for this run (None when absent or damaged)."""
    path = Path(folder) / R.JOBS / "job.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("job_id"), (str, int))
    return {**record, "job_id": str(record["job_id"])} if ok else None


def job_state(record: dict) -> str | None:
    """QUEUED / RUNNING-like state of a recorded job while it is not over, else None."""
    if record.get("launcher") == "slurm":
        state = slurm_job_state(record["job_id"])
        return state if state in QUEUED or state in JOB_ALIVE else None
    if record.get("host") == platform.node():  # local launcher: the job id is its controller's pid
        try:
            os.kill(int(record["job_id"]), 0)
            return "RUNNING" if not _zombie(int(record["job_id"])) else None
        except (ProcessLookupError, ValueError):
            return None
    return None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def active_job(folder: Path, record: dict | None = None) -> dict | None:
    """The run's recorded job with its state, if it is queued or running."""
    record = record or jobs_record(folder)
    state = job_state(record) if record else None
    return {**record, "state": state} if state else None


def progress(folder: Path) -> str:
    """'<phase> epoch E step S' from the last line of the newest phase log."""
    for phase in reversed(PHASES):
        log = Path(folder) / phase / "log.jsonl"
        if log.exists():
            try:
                lines = log.read_text(errors="replace").strip().splitlines()
                last = json.loads(lines[-1]) if lines else None
            except (OSError, ValueError):  # unreadable, or a line cut by a kill: the phase is known
                return phase
            if not lines:
                return f"{phase} starting"
            if not isinstance(last, dict):
                return phase
            return f"{phase} epoch {last.get('epoch')} step {last.get('step')}"
    return "starting"


def last_error(folder: Path, record: dict | None) -> str | None:
    """The last error line of the run's latest job: ablate.py's [failed] line, else the traceback's end."""
    if not record:
        return None
    jobs = Path(folder) / R.JOBS
    job = record["job_id"]
    for out in sorted(jobs.glob(f"{job}_*_log.out")):
        failed = [ln for ln in out.read_text(errors="replace").splitlines() if ln.startswith("[failed]")]
        if failed:  # "[failed] <run>: <Error>: <message>. <advice> (kind)." -> all but the run
            line = failed[-1].removeprefix("[failed] ").split(": ", 1)[-1]
            return re.sub(r" \(rerun the same command to resume\)$", "", line)  # older lines
    for err in sorted(jobs.glob(f"{job}_*_log.err")):
        lines = err.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if re.match(r"\w+(Error|Exception|Interrupt)\b", ln) or "error:" in ln]
        if errors:
            return errors[-1].strip()
    return None


def folder_state(runs_dir: Path, run) -> tuple[str, list[str]]:
    """ablations.study.runs.status of the run's folder: ('new' | 'changed' | 'partial' | 'done',
    reasons). Read only: its repairs wait for the command that trains the run."""
    folder = R.run_dir(runs_dir, run)
    return R.status(folder, run.config, run_identity(run.config), log=lambda *a: None, repair=False)


def run_state(runs_dir: Path, run) -> tuple[str, str]:
    """(state, detail) of one run; states as in the module docstring."""
    folder = R.run_dir(runs_dir, run)
    state, reasons = folder_state(runs_dir, run)
    if state == "done":
        metrics = R.read_metrics(folder) or {}
        top1 = metrics.get("top1")
        acc = f"top-1 {top1:.1f}" if isinstance(top1, (int, float)) else "top-1 -"
        why = R.read_file(folder / R.IDENTITY, json.loads)[1]
        note = f"; {R.IDENTITY} {why}: taken from {R.CONFIG} (the next run of it rewrites it)" if why else ""
        # the build goes last: status_text reads it from there
        return "finished", f"{acc}{note}, build {build_label(metrics.get('env'))}"
    record, holder = jobs_record(folder), read_record(folder / R.LOCK)
    if holder and holder_alive(holder, lock_free=False):
        return "running", f"{describe(holder)}: {progress(folder)}"
    job = active_job(folder, record)
    if job and job["state"] in QUEUED:
        return "queued", f"{job['launcher']} job {job['job_id']} ({_reason(job)})"
    if job:
        return "running", f"{job['launcher']} job {job['job_id']}: {progress(folder)}"
    if state == "changed" and reasons and reasons[0].endswith(R.UNKNOWN):
        return "damaged", f"{reasons[0]}; --force retrains"
    if state == "changed":
        return "changed", "config.yaml differs from this config; --force retrains"
    recorded = failure.read(folder)  # this machine's or a job's last attempt (<run>/failed.json)
    if recorded:
        job = f"{record['launcher']} job {record['job_id']}: " if record else ""
        return "failed", f"{job}{recorded['kind']}: {recorded['message']}"
    error = last_error(folder, record)
    if error:
        return "failed", f"{record['launcher']} job {record['job_id']}: {error}"
    if state == "partial" and R.phases_done(folder, run.config):
        why = R.read_file(folder / R.METRICS, json.loads)[1]
        return "trained", f"every phase done, {R.METRICS} {why}: the same command rebuilds it (no training)"
    if state == "partial":
        return "stopped", f"resumable, {progress(folder)}"
    return "not started", ""


def _reason(job: dict) -> str:
    if job.get("launcher") != "slurm":
        return job["state"].lower()
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-j", job["job_id"], "-o", "%r"], capture_output=True,
                             text=True, timeout=30).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"{job['state'].lower()}: {out}" if out else job["state"].lower()


def label(run) -> str:
    """The run's name, with its sweep point by its values beside the variant's hash."""
    point = W.point_label(run.sweep)
    return f"{run.name} [{point}]" if point else run.name


def status_text(runs, runs_dir: Path) -> str:
    rows = [(label(run), *run_state(runs_dir, run)) for run in runs]
    rows = [(n, s, f"reuses {home}: {d}" if (home := homes.reuses(runs_dir, run)) else d)
            for (n, s, d), run in zip(rows, runs)]  # fmt: skip
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{'run':{w0}}  {'state':{w1}}  detail"]
    lines += [f"{n:{w0}}  {s:{w1}}  {d}".rstrip() for n, s, d in rows]
    counts = {}
    for _, s, _ in rows:
        counts[s] = counts.get(s, 0) + 1
    builds = sorted({d.split(", build ", 1)[1] for _, s, d in rows if s == "finished" and ", build " in d})
    flags = build_flags(builds)
    head = f"builds: {'; '.join(builds)}" + (f" ({flags})" if flags else "") + "\n" if builds else ""
    return "\n".join(lines) + "\n\n" + head + ", ".join(f"{v} {k}" for k, v in counts.items())
