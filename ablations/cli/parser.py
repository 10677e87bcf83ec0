"""ablate.py's flags (argparse): the selection, what to do with it, and the cluster launchers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ablations.study import config as C
from ablations.study.sweep import CONFIRM_RUNS
from analysis.seed_rounds import AUTO

LAUNCHERS = ("slurm", "local")
DEFAULT_PRESET = "cpu"


def epilog() -> str:
    return (
        f"Rows: {C.source('rows')}. Presets: {C.source('presets')}. Tables: {C.source('tables')}. "
        "--list shows all."
    )


def tables_help(figures: bool) -> str:
    """--table's or --fig's choices, read from the table files (as --list reads them)."""
    names = sorted(
        (t for t in C.list_tables() if C.is_figure(t) == figures), key=lambda t: t not in C.PAPER_TABLES
    )
    short = {t: C.table_flag(t).split()[-1] for t in names}  # 1 = table1; loo is its own name
    choices = [
        f"{short[t]}{'' if short[t] == t else f' = {t}'} ({C.load_table(t).get('title', t)})" for t in names
    ]
    return f"{' or '.join(choices)}; files: {C.source('tables')}"


def presets_help() -> str:
    """--preset's choices, read from the preset files (as --list reads them)."""
    names = [f"{p} (default)" if p == DEFAULT_PRESET else p for p in C.list_presets()]
    return f"{', '.join(names)}; files: {C.source('presets')}"


def rows_help() -> str:
    """--step's choices, the rows of models/rows.yaml (as --list reads them)."""
    return f"one Table 1 row: {', '.join(C.list_rows())}; file: {C.source('rows')}"


def seeds_arg(text: str) -> int | tuple[int, int]:
    """--seeds N (every run N times), LO..HI (rounds: analysis/seed_rounds.py) or auto (= AUTO)."""
    if text == "auto":
        return AUTO
    lo, dots, hi = text.partition("..")
    try:
        if not dots:
            return int(text)
        lo, hi = int(lo), int(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N, LO..HI (e.g. 3..10) or auto") from None
    if not 2 <= lo <= hi:
        raise argparse.ArgumentTypeError(
            f"{text!r}: rounds need LO >= 2 (the seed spread needs two seeds) and HI >= LO, e.g. 3..10"
        )
    return lo, hi


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give an effect in points above 0, e.g. --resolve 1.0")
    return value


def escaped(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help strings with %


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ablate.py",
        description="Recreate the Hiera paper's Table 1, Table 3 and Fig. 8.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    p.add_argument("--step", metavar="ROW", help=escaped(rows_help() + "; with --table, one entry of it"))
    what.add_argument(
        "--table", metavar="N", help=escaped(tables_help(figures=False) + "; or a YAML table file")
    )
    what.add_argument("--fig", metavar="N", help=escaped(tables_help(figures=True)))
    p.add_argument(
        "--mode", help="mae (pretrain + finetune) or supervised (from scratch); default: the table's"
    )
    p.add_argument("--modality", help="image or video (default: the preset's first; image for cpu)")
    user_preset = "; or a YAML preset file (preset: {extends: cpu} and its changes)"
    p.add_argument("--preset", default=DEFAULT_PRESET, help=escaped(presets_help() + user_preset))
    p.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values (dotted keys; values parsed as YAML): "
                        "--set a=1 b=2, or --set a=1 --set b=2. A comma list sweeps: "
                        "--set mae.mask_ratio=0.4,0.6 "
                        "is one run per value (several swept keys: every combination); brackets, braces and "
                        "quotes keep their commas ([32,32] is one value), \\, is a literal "
                        "comma")  # fmt: skip
    p.add_argument(
        "--seeds", type=seeds_arg, default=1, metavar="N|LO..HI|auto",
        help="repeat with N seeds (tables show mean ± std); LO..HI: train LO seeds, then add seeds in "
        "rounds only to comparisons still undecided and resolvable within HI (the report's MDE against "
        f"the target effect); auto = {AUTO[0]}..{AUTO[1]}",
    )  # fmt: skip
    p.add_argument(
        "--resolve", type=positive, metavar="POINTS",
        help="the effect (top-1 points) the report's 'seeds needed' and --seeds LO..HI aim at "
        "(default: the paper's own Table 1 step)",
    )  # fmt: skip
    p.add_argument("--runs-dir", default="runs", type=Path, help="where run folders go (default: runs/)")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.add_argument("--list", action="store_true", help="show rows, tables and presets, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configs as YAML; train nothing")
    p.add_argument(
        "--bench", action="store_true", help="measure params, MACs and throughput only; no training"
    )
    p.add_argument(
        "--attn-backend", choices=["math", "auto", "both"], default=None,
        help="--bench only: time attention as plain matmuls (math, default: the paper's protocol, no "
        "FlashAttention), with PyTorch's fused kernel choice (auto), or both",
    )  # fmt: skip
    p.add_argument("--report", action="store_true", help="only regenerate runs/report/ from finished runs")
    p.add_argument(
        "--plan", action="store_true",
        help="print each run's memory plan (per-device batch, accumulation, checkpointing, peak memory); "
        "no training",
    )  # fmt: skip
    p.add_argument("--device-mem", type=float, metavar="GIB",
                   help="plan for devices with this much memory (GiB; --plan default 80); with training or "
                   "--dry-run the plan is applied and recorded in runtime.plan")  # fmt: skip
    p.add_argument("--devices", type=int, help="devices the plan, preview and time estimate split the "
                   "global batch over (default: a --launcher job's nodes x tasks per node, else WORLD_SIZE, "
                   "else for --plan the GPUs found or 8, else 1)")  # fmt: skip
    p.add_argument("--rehearse", type=int, nargs="?", const=3, metavar="STEPS",
                   help="run every run of the selection for STEPS (default 3) steps of every phase at its "
                   "real model, input, dtype, data and per-device batch, in a throwaway runs folder: "
                   "pass/fail per run with the failing phase, step time, peak memory against the plan, and "
                   "the full run's estimated wall time; with --launcher slurm, as one short job")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars: plain log lines, as in log files")
    p.add_argument("--yes", action="store_true",
                   help=f"train a sweep of more than {CONFIRM_RUNS} runs (without it such a sweep is "
                   "refused; --dry-run shows the count)")  # fmt: skip
    add_launcher_arguments(p)
    return p


def add_launcher_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clusters (one submitit job per run; docs/scale.md#slurm)")
    arg = g.add_argument
    arg(
        "--launcher",
        choices=LAUNCHERS,
        help="submit one job per run and return: slurm (sbatch), local (default: none, train here)",
    )
    arg("--nodes", type=int, default=1, help="nodes per job (slurm; default 1)")
    arg(
        "--gpus-per-node",
        type=int,
        metavar="N",
        help="GPUs per node (required for a GPU preset under --launcher slurm: no default, so a job never "
        "lands without its GPUs; 0: CPU-only, gloo; --launcher local default 0)",
    )
    arg("--tasks-per-node", type=int, help="processes per node (default: --gpus-per-node, or 1)")
    arg("--cpus-per-task", type=int, help="CPU cores per process (default: the partition's)")
    arg("--partition", help="Slurm partition (default: the cluster's default partition)")
    arg("--account", help="Slurm account (default: your default account)")
    arg(
        "--time",
        help="time limit per job, [D-]HH:MM:SS or minutes; jobs requeue at the limit "
        "(default: the partition's limit; --launcher local: 7 days)",
    )
    arg(
        "--slurm-opt",
        dest="slurm_opts",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm-opt mem=64G --slurm-opt constraint=a100 (default: none)",
    )
    arg(
        "--signal-delay",
        type=int,
        default=90,
        metavar="S",
        help="Slurm sends SIGUSR1 S seconds before the time limit (default 90)",
    )
    arg(
        "--wait",
        action="store_true",
        help="with --launcher: block until every job ended, then report (default: submit and return)",
    )
    arg("--status", action="store_true", help="each run: finished, running, queued, failed, not started")
    arg("--only", metavar="RUN", help="train only this run of the selection (what each job runs)")
