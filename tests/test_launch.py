"""The cluster launcher's parts that need no Slurm: flag checks before any work, the job's command
line, run locks left by dead holders, --status, and one real job through --launcher local
(submitit's local executor: the job a Slurm node would run, on this machine)."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ablations.cli import main as cli
from ablations.cli.launch.options import parse_slurm_opts, parse_time
from ablations.cli.launch.submit import job_argv
from ablations.cli.parser import parser
from ablations.store.atomic import write_json_atomic
from ablations.store.lock import RunLocked, exclusive, read_record
from ablations.study import runs as R
from ablations.study.config import ConfigError
from ablations.study.identity import run_identity
from ablations.study.status import status_text

REPO = Path(__file__).resolve().parent.parent
TINY = ["--step", "f", "--preset", "tiny"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nodes", "2"], "--nodes: only for cluster jobs; add --launcher slurm"),
        (["--wait"], "--wait: only for cluster jobs"),
        (["--launcher", "local", "--nodes", "2"], "use --nodes 1 (or --launcher slurm)"),
        (["--launcher", "local", "--bench"], "--bench runs here, not as a job: drop --launcher"),
        (["--launcher", "local", "--status"], "--status runs here"),
        (["--launcher", "local", "--time", "soon"], "--time 'soon': use HH:MM:SS"),
        (["--launcher", "local", "--tasks-per-node", "0"], "--tasks-per-node must be at least 1"),
        (["--launcher", "local", "--partition", "gpu"], "are for --launcher slurm"),
        (
            ["--only", "table1/a/image/tiny/seed0"],
            "--only 'table1/a/image/tiny/seed0' is not in this selection",
        ),
    ],
)
def test_bad_launcher_flags_stop_before_any_work(tmp_path, capsys, args, message):
    assert cli.main([*TINY, "--runs-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_slurm_launcher_without_slurm_names_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert cli.main([*TINY, "--runs-dir", str(tmp_path), "--launcher", "slurm"]) == 2
    assert "scripts/slurm_cluster.sh start" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["in1k-l", "k400-b", "gpu-cifar"])
def test_a_gpu_preset_sent_to_slurm_without_gpus_is_refused(tmp_path, capsys, monkeypatch, preset):
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for tool in ("sbatch", "srun"):  # a stand-in Slurm that fails the test if anything is submitted
        (tmp_path / tool).write_text("#!/bin/sh\necho submitted >&2; exit 1\n")
        (tmp_path / tool).chmod(0o755)
    argv = ["--step", "f", "--preset", preset, "--set", "data.root=/nowhere",
            "--runs-dir", str(tmp_path / "r"), "--launcher", "slurm", "--partition", "learn",
            "--time", "72:00:00"]  # fmt: skip
    assert cli.main(argv) == 2
    gpus = 1 if preset == "gpu-cifar" else 8
    err = capsys.readouterr().err
    assert "trains on GPUs but the job asks for none" in err and f"--gpus-per-node {gpus}" in err
    assert "submitted" not in err and not (tmp_path / "r").exists()
    # CPU-only is a choice the command says out loud; runtime.device cuda without GPUs is refused
    assert cli.main([*argv, "--gpus-per-node", "0", "--set", "runtime.device=cuda", "--dry-run"]) == 2
    assert "the job would have no GPU" in capsys.readouterr().err


def test_dry_run_of_a_slurm_job_prints_its_script_and_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for tool in ("sbatch", "srun"):
        (tmp_path / tool).write_text("#!/bin/sh\necho submitted >&2; exit 1\n")
        (tmp_path / tool).chmod(0o755)
    runs = tmp_path / "r"
    argv = [*TINY, "--runs-dir", str(runs), "--launcher", "slurm", "--nodes", "2", "--gpus-per-node", "0",
            "--tasks-per-node", "4", "--time", "1:00:00", "--dry-run"]  # fmt: skip
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "# devices: 8 (the job's --nodes 2 x 4 tasks per node)" in out
    assert "global batch 32 = 4 per device x 1 accumulation x 8 processes" in out
    assert "#SBATCH --nodes=2" in out and "#SBATCH --ntasks-per-node=4" in out and "#SBATCH --time=60" in out
    assert "none submitted" in out and "--only table1/f/image/tiny/seed0" in out
    assert "each task runs: ablate.py --step f --preset tiny --runs-dir" in out  # no --dry-run: it trains
    assert "submitted" not in err and not runs.exists()


def test_plan_of_a_slurm_job_is_for_all_its_tasks(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("HIERA_CACHE", str(tmp_path / "cache"))
    for tool in ("sbatch", "srun"):
        (tmp_path / tool).write_text("#!/bin/sh\necho submitted >&2; exit 1\n")
        (tmp_path / tool).chmod(0o755)
    argv = [*TINY, "--set", "pretrain.batch_size=64", "finetune.batch_size=64", "--launcher", "slurm",
            "--nodes", "8", "--gpus-per-node", "8", "--plan", "--device-mem", "4"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Memory plan: 64 devices x 4 GiB (devices: the job's --nodes 8 x 8 tasks per node" in out
    assert "| pretrain | 64 | 64 | 1 | 1 |" in out  # global, devices, per device, accum
    # finetune's 32 over 64 tasks: one line with the fix, no traceback
    assert cli.main([a for a in argv if a != "finetune.batch_size=64"]) == 2
    assert "does not split evenly over 64 processes" in capsys.readouterr().err


def test_help_shows_every_launcher_default(capsys):
    group = next(g for g in parser()._action_groups if g.title.startswith("clusters"))
    said = [a.option_strings[0] for a in group._group_actions if "default" in (a.help or "")]
    flags = [a.option_strings[0] for a in group._group_actions if a.dest not in ("status", "only")]
    assert said == flags  # every launcher flag's help says what happens when it is not given
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--gpus-per-node N GPUs per node (required for a GPU preset under --launcher slurm" in text


def test_time_and_slurm_opts():
    assert [parse_time(t) for t in ("90", "1:30", "72:00:00", "2-0", "1-12:30", "10:00:01")] == [
        90, 2, 4320, 2880, 2190, 601,
    ]  # fmt: skip
    assert parse_slurm_opts(["mem=64G", "--exclusive", "gpu-bind=closest"]) == {
        "mem": "64G", "exclusive": True, "gpu_bind": "closest",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_slurm_opts(["=3"])


def test_job_command_drops_launcher_flags(tmp_path):
    argv = ["--table", "1", "--launch", "slurm", "--nodes=8", "--gpus-per-node", "8", "--set", "seed=1",
            "--slurm-opt", "mem=64G", "--wait", "--force", "--runs-dir", "x", "--preset", "tiny"]  # fmt: skip
    kept = ["--table", "1", "--set", "seed=1", "--preset", "tiny"]
    assert job_argv(argv, tmp_path) == [*kept, "--runs-dir", str(tmp_path.resolve()), "--quiet"]


def dead_pid() -> int:
    """The pid of a process that has exited."""
    p = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(p.stdout)


def test_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    record = {"host": platform.node(), "pid": dead_pid(), "launcher": None, "job_id": None, "since": "t"}
    (tmp_path / ".lock").write_text(json.dumps(record))
    logged = []
    with exclusive(tmp_path / ".lock", log=logged.append):
        assert read_record(tmp_path / ".lock")["pid"] == os.getpid()
    assert "[stale lock]" in logged[0] and f"pid {record['pid']}" in logged[0]
    assert read_record(tmp_path / ".lock") is None  # released: the record is emptied


def test_lock_held_on_another_host_is_refused_with_the_fix(tmp_path):
    record = {"host": "other-node", "pid": 4242, "launcher": None, "job_id": None, "since": "t"}
    (tmp_path / ".lock").write_text(json.dumps(record))
    with pytest.raises(RunLocked, match=r"pid 4242 on other-node .*delete .*\.lock"):
        with exclusive(tmp_path / ".lock"):
            pass
    assert read_record(tmp_path / ".lock") == record  # left as it was


def _folder(runs: Path) -> Path:
    return runs / "table1/f/image/tiny/seed0"


def test_status_of_each_kind_of_run(tmp_path):
    runs = cli.C.resolve(cli.selection(cli.parser().parse_args(["--table", "1", "--preset", "tiny"])))
    run = {r.config["model"]["step"]: r for r in runs}
    folder = {row: R.run_dir(tmp_path, r) for row, r in run.items()}
    for row in "abcd":
        folder[row].mkdir(parents=True)
        write_json_atomic(run_identity(run[row].config), folder[row] / R.IDENTITY)
    (folder["a"] / R.METRICS).write_text(json.dumps({"top1": 41.25}))
    me = {"host": platform.node(), "pid": os.getpid(), "launcher": "local", "job_id": "77", "since": "t"}
    (folder["b"] / ".lock").write_text(json.dumps(me))
    (folder["b"] / "pretrain").mkdir()
    (folder["b"] / "pretrain" / "log.jsonl").write_text('{"phase": "pretrain", "epoch": 3, "step": 7}\n')
    dead = str(dead_pid())
    (folder["c"] / ".lock").write_text(json.dumps({**me, "pid": dead}))  # a dead holder: not "running"
    jobs = folder["d"] / R.JOBS
    jobs.mkdir()
    (jobs / "job.json").write_text(json.dumps({"launcher": "local", "job_id": dead, "host": platform.node()}))
    (jobs / f"{dead}_0_log.out").write_text(
        "[train] x\n[failed] table1/d: ValueError: no batch (rerun the same command to resume)\n"
    )
    lines = status_text(runs, tmp_path).splitlines()

    def state(row):
        return next(ln for ln in lines if ln.startswith(run[row].name + " "))

    assert "finished" in state("a") and "top-1 41.2" in state("a")
    assert (
        "running" in state("b") and "local job 77" in state("b") and "pretrain epoch 3 step 7" in state("b")
    )
    assert "stopped" in state("c") and "resumable" in state("c")
    assert "failed" in state("d") and state("d").endswith(f"local job {dead}: ValueError: no batch")
    assert "not started" in state("mvitv2")
    assert (
        lines[-1] == "1 not started, 1 finished, 1 running, 1 stopped, 1 failed, 2 not started"
        or "failed" in lines[-1]
    )


def test_local_launcher_runs_the_job_and_waits(tmp_path, capsys, one_thread):
    """The real job code path (submitit pickles RunJob, a task runs ablate.py --only <run>)."""
    cmd = [sys.executable, str(REPO / "ablate.py"), *TINY, "--set", "runtime.threads=1",
           "--runs-dir", str(tmp_path), "--launcher", "local", "--wait"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted local job" in out.stdout and "1/1 runs finished" in out.stdout
    folder = _folder(tmp_path)
    record = json.loads((folder / R.JOBS / "job.json").read_text())
    log = (folder / R.JOBS / f"{record['job_id']}_0_log.out").read_text()
    assert "[train] table1/f/image/tiny/seed0" in log and "Job completed successfully" in log
    assert json.loads((folder / R.METRICS).read_text())["top1"] is not None
    # the same command again submits nothing (in-process: no second interpreter and torch import)
    assert cli.main(cmd[2:]) == 0
    again = capsys.readouterr().out
    assert "finished (metrics.json); --force retrains it" in again and "0 jobs submitted" in again
