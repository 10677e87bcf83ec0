"""Cluster launchers for ablate.py: one submitit job per run.

    python ablate.py --table 1 --preset in1k-l --launcher slurm --nodes 8 --gpus-per-node 8 \\
        --partition learn --time 72:00:00        # 7 jobs of 64 tasks; prints job ids and returns
    python ablate.py --table 1 --preset in1k-l --status   # finished / running / queued / failed
    python ablate.py --step f --preset tiny --launcher local --wait   # the same job, on this machine

Each job runs `python ablate.py <selection> --only <run>` in every task (ablations/launch/job.py),
with torch.distributed set up from Slurm's environment. `add_arguments` / `check` / `launch` are
all cli.py needs.
"""

from __future__ import annotations

import argparse
import re

from ablations.config import ConfigError

LAUNCHERS = ("slurm", "local")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clusters (one submitit job per run; README: Running on GPUs and clusters)")
    arg = g.add_argument
    arg("--launcher", choices=LAUNCHERS, help="submit one job per run and return: slurm (sbatch), local")
    arg("--nodes", type=int, default=1, help="nodes per job (slurm; default 1)")
    arg("--gpus-per-node", type=int, default=0, help="GPUs per node (0: CPU-only, gloo)")
    arg("--tasks-per-node", type=int, help="processes per node (default: --gpus-per-node, or 1)")
    arg("--cpus-per-task", type=int, help="CPU cores per process")
    arg("--partition", help="Slurm partition")
    arg("--account", help="Slurm account")
    arg("--time", help="time limit per job, [D-]HH:MM:SS or minutes; jobs requeue at the limit")
    arg("--slurm-opt", dest="slurm_opts", action="append", default=[], metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm-opt mem=64G --slurm-opt constraint=a100")  # fmt: skip
    arg("--signal-delay", type=int, default=90, metavar="S",
        help="Slurm sends SIGUSR1 S seconds before the time limit (default 90)")  # fmt: skip
    arg("--wait", action="store_true", help="with --launcher: block until every job ended, then report")
    arg("--status", action="store_true", help="each run: finished, running, queued, failed, not started")
    arg("--only", metavar="RUN", help="train only this run of the selection (what each job runs)")


def parse_time(text: str) -> int:
    """Slurm's time formats -> whole minutes (seconds round up): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(f"--time {text!r}: use HH:MM:SS, D-HH:MM:SS or minutes, e.g. --time 72:00:00")
    days, fields = m[1], [int(x) for x in m.groups()[1:] if x is not None]
    if days is not None:
        h, mi, s = (fields + [0, 0])[:3]
        return int(days) * 1440 + h * 60 + mi + (s > 0)
    if len(fields) == 3:
        return fields[0] * 60 + fields[1] + (fields[2] > 0)
    return fields[0] + (len(fields) == 2 and fields[1] > 0)


def parse_slurm_opts(opts: list[str]) -> dict:
    """['mem=64G', 'exclusive'] -> {'mem': '64G', 'exclusive': True} (sbatch --mem=64G --exclusive)."""
    out = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        key = key.strip().lstrip("-")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise ConfigError(f"--slurm-opt {opt!r}: expected KEY=VALUE with an sbatch option, e.g. mem=64G")
        out[key.replace("-", "_")] = value if eq else True
    return out


def check(args) -> None:
    """Launcher flags that cannot work, refused before anything is submitted."""
    launch_only = {"--nodes": args.nodes != 1, "--gpus-per-node": args.gpus_per_node != 0,
                   "--tasks-per-node": args.tasks_per_node is not None, "--partition": args.partition,
                   "--account": args.account, "--time": args.time, "--slurm-opt": args.slurm_opts,
                   "--wait": args.wait, "--cpus-per-task": args.cpus_per_task is not None}  # fmt: skip
    if args.launcher is None:
        given = [k for k, v in launch_only.items() if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: only for cluster jobs; add --launcher slurm (or local)")
        return
    for flag in ("dry_run", "bench", "status", "only"):
        if getattr(args, flag, None):
            raise ConfigError(f"--{flag.replace('_', '-')} runs here, not as a job: drop --launcher")
    for name in ("nodes", "tasks_per_node", "cpus_per_task"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.gpus_per_node < 0:
        raise ConfigError(f"--gpus-per-node must be 0 (CPU) or more, got {args.gpus_per_node}")
    if args.launcher == "local" and args.nodes != 1:
        raise ConfigError("--launcher local runs on this machine only: use --nodes 1 (or --launcher slurm)")
    if args.launcher == "local" and (args.partition or args.account or args.slurm_opts):
        raise ConfigError("--partition, --account and --slurm-opt are for --launcher slurm")
    if args.time:
        parse_time(args.time)
    parse_slurm_opts(args.slurm_opts)
    if args.launcher == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise ConfigError(
                "--launcher slurm: sbatch is not on PATH (no Slurm here). Use --launcher local, "
                "or start a test cluster: scripts/slurm_cluster.sh start"
            )


def tasks_per_node(args) -> int:
    return args.tasks_per_node or args.gpus_per_node or 1


def launch(args, sel, runs, argv: list[str]) -> int:
    from ablations.launch.submit import submit_runs

    return submit_runs(args, sel, runs, argv)
