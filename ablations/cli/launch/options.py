"""Launcher flags: parsed and checked before anything is submitted."""

from __future__ import annotations

import re
import shutil

from ablations.errors import ConfigError


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
    launch_only = {"--nodes": args.nodes != 1, "--gpus-per-node": args.gpus_per_node is not None,
                   "--tasks-per-node": args.tasks_per_node is not None, "--partition": args.partition,
                   "--account": args.account, "--time": args.time, "--slurm-opt": args.slurm_opts,
                   "--wait": args.wait, "--cpus-per-task": args.cpus_per_task is not None}  # fmt: skip
    if args.launcher is None:
        given = [k for k, v in launch_only.items() if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: only for cluster jobs; add --launcher slurm (or local)")
        return
    for flag in ("bench", "status", "only"):  # --dry-run and --plan preview the jobs instead
        if getattr(args, flag, None):
            raise ConfigError(f"--{flag.replace('_', '-')} runs here, not as a job: drop --launcher")
    for name in ("nodes", "tasks_per_node", "cpus_per_task"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if (args.gpus_per_node or 0) < 0:
        raise ConfigError(f"--gpus-per-node must be 0 (CPU) or more, got {args.gpus_per_node}")
    if args.launcher == "local" and args.nodes != 1:
        raise ConfigError("--launcher local runs on this machine only: use --nodes 1 (or --launcher slurm)")
    if args.launcher == "local" and (args.partition or args.account or args.slurm_opts):
        raise ConfigError("--partition, --account and --slurm-opt are for --launcher slurm")
    if args.time:
        parse_time(args.time)
    parse_slurm_opts(args.slurm_opts)
    if args.launcher == "slurm":
        if shutil.which("sbatch") is None:
            raise ConfigError(
                "--launcher slurm: sbatch is not on PATH (no Slurm here). Use --launcher local, "
                "or start a test cluster: scripts/slurm_cluster.sh start"
            )


def check_gpus(args, preset: str, gpus: int | None, device: str) -> None:
    """A Slurm job of a GPU preset (one whose `preset.gpus` says how many GPUs per node its recipe
    is sized for, or runtime.device cuda) must ask for GPUs: Slurm gives a job none unless asked, and
    the run would then train on the node's CPUs for days. CPU-only is an explicit --gpus-per-node 0
    (with runtime.device cpu or auto)."""
    if args.launcher != "slurm" or args.gpus_per_node is not None:
        if args.launcher == "slurm" and args.gpus_per_node == 0 and device.startswith("cuda"):
            raise ConfigError("--gpus-per-node 0 with runtime.device cuda: the job would have no GPU; "
                              f"ask for them, e.g. --gpus-per-node {gpus or 8}")  # fmt: skip
        return
    if gpus or device.startswith("cuda"):
        why = "the GPUs per node its recipe is sized for" if gpus else f"runtime.device is {device}"
        raise ConfigError(
            f"--launcher slurm: preset {preset} trains on GPUs but the job asks for none (Slurm gives a job "
            f"no GPU unless asked). Add --gpus-per-node {gpus or 8} ({why}), "
            "or --gpus-per-node 0 to train on CPUs on purpose"
        )


def gpus_per_node(args) -> int:
    """GPUs asked for per node: the flag, or none (only a CPU preset gets here without it)."""
    return args.gpus_per_node or 0


def tasks_per_node(args) -> int:
    return args.tasks_per_node or args.gpus_per_node or 1
