"""Submit one submitit job per run (Slurm or this machine), record it, optionally wait.

Per run folder:
    <run>/slurm/job.json                 the latest job: launcher, job id, host, tasks, submitted_at
    <run>/slurm/<job>_<task>_log.out     each task's stdout / stderr (also .err); submitit's
    <run>/slurm/<job>_submission.sh      sbatch script, pickled call and result sit beside them
"""

from __future__ import annotations

import copy
import platform
import shlex
import time
from pathlib import Path

import submitit

from ablations.cli.launch.job import RunJob
from ablations.cli.launch.options import gpus_per_node, parse_slurm_opts, parse_time, tasks_per_node
from ablations.cli.output import print_table
from ablations.cli.parser import parser
from ablations.store.atomic import write_json_atomic
from ablations.store.lock import RunLocked, exclusive
from ablations.study import runs as R
from ablations.study.identity import run_identity
from ablations.study.sources import is_path
from ablations.study.status import active_job, folder_state, jobs_record, status_text
from analysis.report import write_report

REPO = Path(__file__).resolve().parents[3]
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # the local launcher kills a job at its time limit: default a week


def job_argv(argv: list[str], runs_dir: Path) -> list[str]:
    """The user's selection without the launcher's flags (and without --force: the submitter clears
    the folder, so a requeued job resumes instead of starting over)."""
    p = parser()
    own = {"launcher", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "partition", "account",
           "time", "slurm_opts", "signal_delay", "wait", "force", "runs_dir", "quiet", "dry_run"}  # fmt: skip
    options = {s: a for a in p._actions for s in a.option_strings}
    kept, skip_value, file_value = [], False, False
    for tok in argv:
        if skip_value:
            skip_value = False
            continue
        if file_value:  # a job may start in another folder: a table or preset file goes absolute
            file_value = False
            kept.append(str(Path(tok).resolve()) if is_path(tok) else tok)
            continue
        name = tok.split("=", 1)[0]
        # argparse accepts unique prefixes (--launch): the user's argv already parsed, so a prefix is unique.
        action = options.get(name) or next(
            (a for s, a in options.items() if name.startswith("--") and s.startswith(name)), None
        )
        if action is not None and action.dest in own:
            skip_value = action.nargs != 0 and "=" not in tok
            continue
        if action is not None and action.dest in ("table", "preset"):
            value = tok.split("=", 1)[1] if "=" in tok else None
            if value is None:
                file_value = True
            elif is_path(value):
                tok = f"{name}={Path(value).resolve()}"
        kept.append(tok)
    return kept + ["--runs-dir", str(Path(runs_dir).resolve()), "--quiet"]


class SlurmExecutor(submitit.SlurmExecutor):
    """submitit always writes a time limit (5 minutes unless given): without --time, drop it so that
    the partition's default applies."""

    default_time = False

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        text = super()._make_submission_file_text(command, uid)
        if not self.default_time:
            return text
        return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#SBATCH --time=")) + "\n"


def make_executor(args, folder: Path, name: str):
    setup = [f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}",
             "export SUBMITIT_PREEMPT_SIGNAL=USR1"]  # fmt: skip
    minutes = parse_time(args.time) if args.time else None
    if args.launcher == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(tasks_per_node=tasks_per_node(args), gpus_per_node=gpus_per_node(args),
                             timeout_min=minutes or LOCAL_TIMEOUT_MIN, signal_delay_s=args.signal_delay,
                             setup=setup)  # fmt: skip
        return ex
    # A requeue at the time limit is the normal way through a long run: allow many.
    ex = SlurmExecutor(folder, max_num_timeout=1000)
    ex.default_time = minutes is None
    extra = parse_slurm_opts(args.slurm_opts)
    # Slurm sends SIGUSR1 this long before the limit (submitit's default would be USR2).
    extra["signal"] = f"USR1@{args.signal_delay}"
    params = {"job_name": name, "nodes": args.nodes, "ntasks_per_node": tasks_per_node(args), "setup": setup,
              "additional_parameters": extra, "stderr_to_stdout": False}  # fmt: skip
    if minutes:
        params["time"] = minutes
    for key in ("partition", "account", "cpus_per_task"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if gpus_per_node(args):
        params["gpus_per_node"] = gpus_per_node(args)
    ex.update_parameters(**params)
    return ex


def needs_job(args, run, head: str) -> bool:
    """Under the run's lock: whether to submit it (finished, changed or already queued/running runs
    are not), clearing its folder first for --force. The lock is released before submitting: a
    job that starts at once must find it free."""
    folder = R.run_dir(args.runs_dir, run)
    try:
        with exclusive(folder / R.LOCK, holder="another process training it"):
            state, reasons = R.status(folder, run.config, run_identity(run.config))
            if state == "done" and not args.force:
                print(f"{head}: finished (metrics.json); --force retrains it")
                return False
            if state == "changed" and not args.force:
                why = "; ".join(reasons[:3])
                print(f"{head}: this folder trained something else ({why}); --force retrains it")
                return False
            job = active_job(folder)
            if job:
                print(f"{head}: already {job['state'].lower()} as {job['launcher']} job {job['job_id']}")
                return False
            if args.force and state != "new":
                R.clear(folder)
            return True
    except RunLocked as e:
        print(f"{head}: {e}; not submitted")
        return False


def job_scripts(args, runs, argv: list[str], entry) -> str:
    """--dry-run with --launcher: each job's resources and the sbatch script that would be submitted
    (submitit's own text for these flags), and the command every task runs; nothing is submitted
    and no folder is made."""
    base = job_argv(argv, args.runs_dir)
    out = []
    for i, run in enumerate(runs, 1):
        ex = make_executor(args, R.run_dir(args.runs_dir, run) / R.JOBS, name=f"ablate:{run.name}")
        tasks = tasks_per_node(args)
        res = (f"{args.nodes} node(s) x {tasks} task(s), {gpus_per_node(args)} GPU(s) per node, "
               f"time {args.time or 'the partition default'}")  # fmt: skip
        task = shlex.join(["ablate.py", *base, "--only", run.name])
        if args.launcher == "slurm":
            script = ex._make_submission_file_text(ex._submitit_command_str, "dry-run")
        else:
            script = f"# runs on this machine (submitit LocalExecutor), {tasks} process(es)\n"
        out.append(f"# job {i}/{len(runs)} {run.name}: {res}; each task runs: {task}\n{script}")
    return f"\n# --dry-run: {len(runs)} {args.launcher} job(s), none submitted\n" + "\n".join(out)


REHEARSAL_TIME = "1:00:00"  # a rehearsal job's limit unless --time is given


def submit_rehearsal(args, argv: list[str], entry) -> int:
    """--rehearse --launcher slurm: the whole rehearsal as one short job of one task (one GPU when
    the job asks for GPUs), so its step times and memory are the cluster's own. Its output is the
    job's log (<runs-dir>/rehearsal/slurm/); --wait prints it when the job ends."""
    folder = Path(args.runs_dir) / "rehearsal" / "slurm"
    one = copy.copy(args)
    one.nodes, one.tasks_per_node = 1, 1
    one.gpus_per_node = min(gpus_per_node(args), 1) if args.gpus_per_node is not None else None
    one.time = args.time or REHEARSAL_TIME
    job = make_executor(one, folder, name="ablate:rehearsal").submit(
        RunJob(job_argv(argv, args.runs_dir), entry)
    )
    log = folder / f"{job.job_id}_0_log.out"
    print(f"[rehearse] submitted {args.launcher} job {job.job_id} (1 task, {gpus_per_node(one)} GPU, "
          f"time {one.time}); its report will be in {log}", flush=True)  # fmt: skip
    if not args.wait:
        return 0
    while not job.done():
        time.sleep(3.0)
    print(log.read_text() if log.exists() else f"(no log at {log})")
    try:
        job.result()
        return 0
    except Exception as e:  # the job's own exit status (1: a run failed its rehearsal)
        print(f"[rehearse] job {job.job_id} did not pass: {str(e).strip().splitlines()[-1][:300]}")
        return 1


def submit_runs(args, sel, runs, argv: list[str], entry) -> int:
    base = job_argv(argv, args.runs_dir)
    submitted = {}
    for i, run in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {run.name}"
        if not needs_job(args, run, head):
            continue
        jobs = R.run_dir(args.runs_dir, run) / R.JOBS
        job = make_executor(args, jobs, name=f"ablate:{run.name}").submit(
            RunJob(base + ["--only", run.name], entry)
        )
        record = {"launcher": args.launcher, "job_id": str(job.job_id), "host": platform.node(),
                  "tasks": args.nodes * tasks_per_node(args), "nodes": args.nodes,
                  "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
        write_json_atomic(record, jobs / "job.json")
        submitted[run.name] = job
        print(f"{head}: submitted {args.launcher} job {job.job_id} (logs: {jobs}/)", flush=True)
    where = [] if Path(args.runs_dir) == Path("runs") else ["--runs-dir", str(args.runs_dir)]
    hint = shlex.join(["ablate.py", *base[:-3], *where, "--status"])
    print(f"\n{len(submitted)} jobs submitted. Progress: {hint}")
    if not args.wait:
        return 0
    return wait_and_report(args, sel, runs, submitted)


def wait_and_report(args, sel, runs, submitted: dict, poll_s: float = 3.0) -> int:
    """Block until no submitted job is queued or running, then print the status and the table."""
    folders = {name: args.runs_dir / name for name in submitted}
    while any(_active(args, job, folders[name]) for name, job in submitted.items()):
        time.sleep(poll_s)
    print(status_text(runs, args.runs_dir))
    report = write_report(args.runs_dir, resolve=args.resolve)
    finished = [r for r in runs if folder_state(args.runs_dir, r)[0] == "done"]
    if finished:
        print_table(sel, runs, args.runs_dir)
    print(f"\n{len(finished)}/{len(runs)} runs finished. Report: {report}/{runs[0].variant}/")
    return 0 if len(finished) == len(runs) else 1


def _active(args, job, folder: Path) -> bool:
    if args.launcher == "local":  # our child: poll it (a finished child is a zombie until reaped)
        return not job.done()
    return active_job(folder, jobs_record(folder)) is not None
