"""ablate.py on a real Slurm (scripts/slurm_cluster.sh start; .ci/run starts it), through the
commands a user types. One node with 2 CPUs: a 2-task job fills it, so these tests run one after
another and each waits for its jobs.

- 2 tasks (gloo) under Slurm end with exactly the metrics of the same 2-task job run by
  --launcher local;
- a job sent SIGUSR1 mid-run checkpoints, requeues itself, resumes and ends bit-identical;
- --table 1 submits 7 jobs that all finish; --status reports queued, running, finished and
  failed along the way; a lock left by a job that is gone is taken over.

Every wait has a deadline that fails the test instead of hanging. Skipped only when no Slurm
answers (sinfo fails).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER_CONF = Path(os.environ.get("ABLATE_SLURM_DIR", "/tmp/ablate-slurm")) / "slurm.conf"
# MAE row f, tiny, 256 images: 16 pretrain + 8 finetune steps of global batch 32 over 2 tasks.
RECIPE = ["--step", "f", "--preset", "tiny", "--set", "runtime.threads=1", "--set", "data.train_size=256",
          "--set", "pretrain.epochs=2"]  # fmt: skip
TWO_TASKS = ["--tasks-per-node", "2", "--cpus-per-task", "1"]
JOB_TIMEOUT = 600  # a hang fails; a 2-task tiny job takes ~2-4 min on a loaded 2-core machine


def slurm_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if "SLURM_CONF" not in env and CLUSTER_CONF.exists():
        env["SLURM_CONF"] = str(CLUSTER_CONF)
    return env


def slurm_reachable() -> str | None:
    """None when sinfo answers, else why not."""
    if shutil.which("sinfo") is None:
        return "no sinfo on PATH (start a test cluster: scripts/slurm_cluster.sh start)"
    try:
        out = subprocess.run(["sinfo", "-h"], env=slurm_env(), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    return None if out.returncode == 0 else f"sinfo failed: {out.stderr.strip()[:200]}"


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(slurm_reachable() is not None, reason=f"no Slurm: {slurm_reachable()}"),
]


def ablate(runs: Path, *args, timeout=JOB_TIMEOUT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "ablate.py"), *args, "--runs-dir", str(runs)]
    return subprocess.run(cmd, cwd=REPO, env=slurm_env(), capture_output=True, text=True, timeout=timeout)


def slurm(*cmd: str) -> str:
    return subprocess.run(cmd, env=slurm_env(), capture_output=True, text=True, timeout=30, check=True).stdout


def until(what: str, check, timeout: float, every: float = 1.0):
    """Poll check() until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def run_folder(runs: Path, pattern="table1/f/image/tiny+*/seed0") -> Path:
    (folder,) = runs.glob(pattern)
    return folder


def result(runs: Path) -> dict:
    m = json.loads((run_folder(runs) / "metrics.json").read_text())
    keep = ("top1", "top5", "val_loss", "pretrain_loss_first", "pretrain_loss_last", "finetune_loss_last")
    return {k: m["train"][k] for k in keep}


def run_names(selection: list[str]) -> list[str]:
    from ablations.cli import main as cli
    from ablations.study.config import resolve

    return [r.name for r in resolve(cli.selection(cli.parser().parse_args(selection)))]


def job_id(folder: Path) -> str:
    return json.loads((folder / "slurm" / "job.json").read_text())["job_id"]


def job_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted((folder / "slurm").glob("*_log.*")))


def status(runs: Path, *selection) -> dict[str, tuple[str, str]]:
    """{run: (state, detail)} from ablate.py --status."""
    out = ablate(runs, *selection, "--status", timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        m = re.match(r"(\S+/seed\d+)\s+(not started|\w+)\s*(.*)", line)
        if m:
            rows[m[1]] = (m[2], m[3])
    return rows


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm_runs")


@pytest.fixture(scope="module")
def two_task_slurm(runs_root):
    """One 2-task Slurm job of RECIPE, run to the end with --wait."""
    runs = runs_root / "slurm"
    out = ablate(runs, *RECIPE, "--launcher", "slurm", *TWO_TASKS, "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"submitted slurm job \d+", out.stdout) and "1/1 runs finished" in out.stdout
    return runs


def test_two_slurm_tasks_match_the_local_launcher(runs_root, two_task_slurm):
    folder = run_folder(two_task_slurm)
    logs = job_logs(folder)
    assert "global_rank=1(2)" in logs  # two tasks, one torch.distributed process each
    local = runs_root / "local"
    out = ablate(local, *RECIPE, "--launcher", "local", "--tasks-per-node", "2", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert result(two_task_slurm) == result(local)
    assert result(local)["pretrain_loss_last"] < result(local)["pretrain_loss_first"]  # it trained


def test_usr1_checkpoints_requeues_and_resumes_bit_identical(runs_root, two_task_slurm):
    runs = runs_root / "preempted"
    out = ablate(runs, *RECIPE, "--launcher", "slurm", *TWO_TASKS, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = run_folder(runs)
    job = job_id(folder)
    log = folder / "pretrain" / "log.jsonl"
    until("the first pretrain step", lambda: log.exists() and log.read_text().count('"step"') >= 1, 180, 0.1)
    slurm("scancel", "--signal=USR1", job)

    def requeued():
        info = slurm("scontrol", "show", "job", "-o", job)
        return "Restarts=1" in info and "JobState=PENDING" in info

    until("the job to requeue itself", requeued, 120, 0.5)
    assert status(runs, *RECIPE)[folder.relative_to(runs).as_posix()][0] == "queued"
    # Slurm holds a requeued batch job ~2 minutes before it is eligible again; skip the wait.
    slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
    until("the requeued job to finish", lambda: (folder / "metrics.json").exists(), JOB_TIMEOUT)
    logs = job_logs(folder)
    assert re.search(r"stopped (at|after) epoch \d+.*SIGUSR1", logs), logs[-3000:]
    assert f"[requeue] checkpoint saved; requeueing job {job}" in logs
    assert "resumed from" in logs
    assert result(runs) == result(two_task_slurm)


def test_table1_seven_jobs_status_and_stale_lock(runs_root):
    runs = runs_root / "table"
    table = ["--table", "1", "--preset", "tiny", "--set", "runtime.threads=1"]
    # A run that fails only once it runs (every value is valid): its image folder holds 4 images,
    # fewer than one batch, which only reading the folder tells (the images are never decoded).
    data = runs_root / "four-images"
    for split in ("train", "val"):
        for c in ("c0", "c1"):
            (data / split / c).mkdir(parents=True)
            for i in range(2):
                (data / split / c / f"x{i}.png").write_bytes(b"not an image")
    broken = ["--step", "f", "--preset", "tiny", "--set", "data.name=imagefolder", f"data.root={data}",
              "data.num_classes=2"]  # fmt: skip
    out = ablate(runs, *broken, "--launcher", "slurm", "--cpus-per-task", "1", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (broken_run,) = (runs / "table1/f/image").glob("tiny+*")
    broken_job = job_id(broken_run / "seed0")
    state, detail = until("the broken run to fail", lambda: _failed(runs, broken), 180, 2)
    assert f"slurm job {broken_job}: deterministic: ValueError" in detail, detail
    assert "cannot fill one global batch" in detail, detail
    # Row e's lock names a job that is gone (a node died under it): whoever comes next takes over.
    row_e = runs / next(n for n in run_names(table) if n.startswith("table1/e/"))
    row_e.mkdir(parents=True)
    (row_e / ".lock").write_text(json.dumps({"host": "node-gone", "pid": 1, "launcher": "slurm",
                                             "job_id": broken_job, "since": "earlier"}))  # fmt: skip
    assert status(runs, *table)[row_e.relative_to(runs).as_posix()][0] == "not started"  # not "running"
    out = ablate(runs, *table, "--launcher", "slurm", "--cpus-per-task", "1", timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(re.findall(r"submitted slurm job \d+", out.stdout)) == 7
    assert "[stale lock]" in out.stdout and "node-gone" in out.stdout
    first = status(runs, *table)
    assert len(first) == 7 and {s for s, _ in first.values()} <= {"queued", "running", "finished"}
    assert any(s == "queued" for s, _ in first.values())  # 2 CPUs: most of them wait
    running = until(
        "a running job in --status",
        lambda: [d for s, d in status(runs, *table).values() if s == "running" and "slurm job" in d],
        240,
        2,
    )
    assert re.search(r"slurm job \d+", running[0])
    final = until(
        "all 7 runs to finish",
        lambda: (s := status(runs, *table)) and all(v[0] == "finished" for v in s.values()) and s,
        JOB_TIMEOUT * 2,
        5,
    )
    assert all(re.match(r"top-1 \d+\.\d", d) for _, d in final.values())  # row f too: resubmitted, trained


def _failed(runs: Path, selection: list[str]):
    state, detail = next(iter(status(runs, *selection).values()))
    assert state in ("queued", "running", "failed"), (state, detail)
    return (state, detail) if state == "failed" else None


def test_a_rehearsal_runs_as_one_short_job(tmp_path):
    """--rehearse --launcher slurm: the whole rehearsal is one 1-task job; --wait prints its report,
    and the runs folder gets only the job's log, never a run."""
    p = ablate(tmp_path, "--step", "f", "--preset", "tiny", "--set", "data.train_size=64", "--rehearse",
               "--launcher", "slurm", "--cpus-per-task", "1", "--time", "20", "--wait")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "[rehearse] submitted slurm job" in p.stdout and "Selection: 1/1 runs passed" in p.stdout
    assert [f.name for f in tmp_path.iterdir()] == ["rehearsal"] and not list(tmp_path.glob("table1"))
