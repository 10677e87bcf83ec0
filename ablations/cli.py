"""The command line of ablate.py: choose runs, train what is not finished, write the report.

Usage (python ablate.py --help for every flag):
python ablate.py --step f                      # Table 1 row f: MAE pretrain + finetune
python ablate.py --table 1                     # rows mvitv2 (supervised), a..f (MAE)
python ablate.py --table 3                     # MAE ablations on row f
python ablate.py --fig 8                       # rows mvitv2..f supervised from scratch
python ablate.py --table 1 --modality video --preset gpu-cifar --seeds 3
python ablate.py --step f --set pretrain.epochs=20 --dry-run
python ablate.py --table 1 --preset in1k-l --plan --device-mem 40   # what fits a 40 GiB GPU
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import yaml

from ablations import config as C
from ablations import distributed as D
from ablations import launch
from ablations import runs as R
from ablations.errors import RunError
from ablations.identity import files_fingerprint
from ablations.interrupt import INTERRUPTED_EXIT, Stopped, StopRequest, exit_code

EPILOG = "Rows: models/rows.yaml. Presets: ablations/presets/. Tables: ablations/tables/. --list shows all."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ablate.py",
        description="Recreate the Hiera paper's Table 1, Table 3 and Fig. 8.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--step", metavar="ROW", help="one Table 1 row: mvitv2, a..f")
    what.add_argument("--table", metavar="N", help="1 (Table 1: all rows) or 3 (Table 3: MAE ablations)")
    what.add_argument("--fig", metavar="N", help="8 (Fig. 8: the rows trained supervised from scratch)")
    p.add_argument(
        "--mode", help="mae (pretrain + finetune) or supervised (from scratch); default: the table's"
    )
    p.add_argument("--modality", help="image or video (default: the preset's first; image for cpu)")
    p.add_argument(
        "--preset", default="cpu", help="cpu (default), tiny, gpu-cifar, in1k-b, in1k-l, k400-b, k400-l"
    )
    p.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values (dotted keys; values parsed as YAML): "
                        "--set a=1 b=2, or --set a=1 --set b=2")  # fmt: skip
    p.add_argument("--seeds", type=int, default=1, help="repeat with N seeds; tables show mean ± std")
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
    p.add_argument("--devices", type=int, help="devices the plan splits the global batch over "
                   "(default: 8 for --plan, this launch's processes otherwise)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars: plain log lines, as in log files")
    launch.add_arguments(p)
    return p


def selection(args) -> C.Selection:
    table = None
    if args.table is not None:
        table = C.table_name(args.table)
        if table == "fig8":
            raise C.ConfigError("Fig. 8 is --fig 8, not --table 8.")
    if args.fig is not None:
        if str(args.fig) != "8":
            raise C.ConfigError(f"Unknown figure {args.fig!r}. Valid: 8.")
        table = "fig8"
    return C.Selection(
        table=table, step=args.step, mode=args.mode, modality=args.modality, preset=args.preset,
        sets=C.parse_sets(args.sets), seeds=args.seeds,
    )  # fmt: skip


def only(runs: list[C.Run], name: str) -> list[C.Run]:
    """--only: the one run of the selection with this folder name."""
    picked = [r for r in runs if r.name == name.strip("/")]
    if not picked:
        names = ", ".join(r.name for r in runs)
        raise C.ConfigError(f"--only {name!r} is not in this selection. Its runs: {names}")
    return picked


def show_list() -> str:
    from models.steps import row_changes

    rows = row_changes()
    paper = yaml.safe_load((Path(__file__).parent.parent / "analysis" / "paper_numbers.yaml").read_text())
    lines = ["Rows (--step; models/rows.yaml, each = previous + one change):"]
    for row in C.list_rows():
        label = paper["table1"]["rows"].get(row, {}).get("label", "")
        changes = ", ".join(f"{k}={v}" for k, v in (rows.get(row) or {}).items())
        lines.append(f"  {row:8s} {label}  [{changes}]")
    lines.append("\nTables (--table 1, --table 3, --fig 8):")
    for t in C.list_tables():
        spec = C.load_table(t)
        n = {m: len(C.table_entries(t, m)) for m in C.MODALITIES}
        lines.append(f"  {t:8s} {spec.get('title', '')}  ({n['image']} image / {n['video']} video runs)")
    lines.append("\nPresets (--preset):")
    for p in C.list_presets():
        meta = C.load_preset(p).get("preset", {})
        lines.append(f"  {p:10s} {meta.get('description', '')}  [{', '.join(meta.get('modalities', []))}]")
    lines.append("\nModes: mae, supervised.  Modalities: image, video.")
    return "\n".join(lines)


def dry_run_text(runs: list[C.Run]) -> str:
    """Each run's resolved config as YAML, headed by comments: its folder, and how each phase's
    global batch splits over this launch's processes (WORLD_SIZE; runtime.max_batch_per_device)."""
    from ablations.batching import describe
    from ablations.memory_plan import phase_runtime

    world = D.env_world()[1]
    docs = []
    for run in runs:
        phases = C.PHASES[run.config["mode"]]
        caps = {p: phase_runtime(run.config["runtime"], p)[0] for p in phases}  # the memory plan's, if any
        batches = "".join(f"# {p}: {describe(run.config[p], world, caps[p])}\n" for p in phases)
        docs.append(f"# run: {run.name}\n{batches}" + yaml.safe_dump(run.config, sort_keys=False))
    return "---\n".join(docs)


def bench(runs: list[C.Run], attn_backend: str = "math") -> str:
    """Params, MACs and throughput of each run's classifier on this machine (no training), timed
    side by side (analysis.speed_table), beside the paper's Table 1 ratios (A100 fp16, size L)."""
    from analysis.speed_table import bench_text

    return bench_text({run.entry: run.config for run in runs}, attn_backend)


def print_table(sel: C.Selection, runs: list[C.Run], runs_dir: Path) -> None:
    """The table that was asked for (for --step: its header and that row), ours beside the paper's."""
    from analysis.report import table_text

    name = C.selected_table(sel)
    text = table_text(runs_dir, runs[0].variant, name)
    if sel.step is not None:
        lines = text.splitlines()
        text = "\n".join(lines[:2] + [ln for ln in lines[2:] if ln.startswith(f"| {sel.step} |")]) + "\n"
    print(f"\n{name} ({runs[0].variant}, {runs[0].modality}), ours beside the paper's:\n")
    print(text)


def print_trends(sel: C.Selection, trends_md: Path) -> None:
    """After --table 1 / --fig 8: whether the paper's three trends hold (the report's trends.md)."""
    from analysis.trends import verdicts

    if sel.step is None and C.selected_table(sel) in ("table1", "fig8") and trends_md.exists():
        print(f"\nThe paper's trends at this scale ({trends_md}):\n{verdicts(trends_md.read_text())}", end="")


def check_data_once(runs: list[C.Run]) -> None:
    """The data of every run checked before any training (each distinct data config once)."""
    from ablations.data import check_data

    seen = []
    for run in runs:
        if run.config["data"] not in seen:
            seen.append(run.config["data"])
            check_data(run.config["data"])


def os_fix(e: OSError) -> str:
    """What to do about an environment fault, in a few words."""
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "Make the runs folder writable, or pass --runs-dir with a writable one."
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some space (or pass --runs-dir on another disk), then rerun the same command to resume."
    return "Fix that, then rerun the same command to resume."


def main(argv: list[str] | None = None) -> int:
    """ablate.py's exit status: 0 all done, 1 a run failed or changed, 2 a bad command line or
    config (before any work), INTERRUPTED_EXIT (130) after Ctrl-C, PREEMPTED_EXIT (75) after
    SIGTERM/SIGUSR1. Under torchrun every rank runs this; only rank 0 prints to stdout."""
    args = parser().parse_args(argv)
    rank = D.env_world()[0]
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull if rank else sys.stdout):
        if args.list:
            print(show_list())
            return 0
        sel, runs = None, []  # --report reads every finished run; it needs no selection
        try:
            launch.check(args)
            if args.attn_backend is not None and not args.bench:
                raise C.ConfigError("--attn-backend applies to --bench only; add --bench or drop it.")
            if not args.report:
                sel = selection(args)
                runs = C.resolve(sel)
            if args.only:
                runs = only(runs, args.only)
            if args.plan or args.device_mem is not None:
                runs, plans = planned(args, runs)
                if args.plan:
                    return plans
            if not (args.dry_run or args.bench or args.report or args.status or args.plan):
                check_data_once(runs)
                for run in runs:
                    check_batches(run, D.env_world()[1])
        except C.ConfigError as e:
            print(f"ablate.py: error: {e}", file=sys.stderr)
            return 2
        if args.dry_run:
            print(dry_run_text(runs))
            return 0
        if args.status:
            from ablations.status import status_text

            print(status_text(runs, args.runs_dir))
            return 0
        if args.launcher:  # submits jobs and returns; each job runs this command with --only <run>
            return launch.launch(args, sel, runs, sys.argv[1:] if argv is None else argv)
        D.init_distributed()  # once, before any work: every rank joins here or fails here
        try:
            return run_command(args, sel, runs)
        finally:
            D.shutdown()


def planned(args, runs: list[C.Run]) -> tuple[list[C.Run], int]:
    """(runs with runtime.plan, --plan's exit status after printing the plans: 0 all fit, 1 not)."""
    from ablations import memory_plan as M

    mem = 80.0 if args.device_mem is None else args.device_mem
    devices = args.devices or (8 if args.plan else D.env_world()[1])
    try:
        plans = [(run, M.plan_run(run.config, mem, devices)) for run in runs]
    except M.PlanError as e:
        raise C.ConfigError(str(e)) from None
    if args.plan:
        print(f"Memory plan: {devices} devices x {mem:g} GiB\n")
        print(M.plan_table([(run.name, p) for run, p in plans]))
    fit = all(p.fits for _, ps in plans for p in ps.values())
    return [replace(run, config=M.apply_plan(run.config, p, mem)) for run, p in plans], 0 if fit else 1


def check_batches(run: C.Run, world_size: int) -> None:
    """Every phase's global batch splits over this launch's processes (before any work)."""
    from ablations.batching import plan_batch
    from ablations.data.common import repeats
    from ablations.memory_plan import phase_runtime

    for phase in C.PHASES[run.config["mode"]]:
        pc, cap = run.config[phase], run.config["runtime"].get("max_batch_per_device")
        try:
            cap = phase_runtime(run.config["runtime"], phase)[0]
            plan_batch(pc["batch_size"], world_size, cap, repeats(pc.get("aug")))
        except ValueError as e:  # a BatchPlanError, or a bad aug.repeated
            raise C.ConfigError(f"{run.name}, {phase}: {e}") from None


def run_command(args, sel: C.Selection | None, runs: list[C.Run]) -> int:
    """--report, --bench or training, the same on every rank (rank 0 writes and prints)."""
    from analysis.report import write_report

    if args.report:
        try:
            print(f"report written to {D.main_only(write_report, args.runs_dir)}")
        except (OSError, D.RankFailed) as e:  # a missing, read-only or full runs folder
            print(f"ablate.py: error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.bench:
        print(D.main_only(bench, runs, args.attn_backend or "math"))
        return 0
    files_fingerprint.cache_clear()  # data files are fingerprinted afresh by every invocation
    outcomes = {}
    with StopRequest() as stop:  # training shares it; a signal between runs stops before the next
        for i, run in enumerate(runs, 1):
            if signal := stop.agreed():
                print(f"\n[stopped] by {signal} before {run.name}. Rerun the same command to go on.")
                return exit_code(signal)
            print(f"\n== [{i}/{len(runs)}] {run.name}", flush=True)
            outcomes[run.name] = train_one(args, run)
            if isinstance(outcomes[run.name], int):  # stopped: the exit status
                return outcomes[run.name]
    if args.only:  # one run of a cluster job: the submitting command (--wait) or --report writes the report
        return 1 if {"failed", "changed"} & set(outcomes.values()) else 0
    try:
        report = D.main_only(write_report, args.runs_dir)
    except (OSError, D.RankFailed) as e:
        print(f"ablate.py: error: the runs are saved, but not the report: {e}", file=sys.stderr)
        return 1
    D.main_only(print_table, sel, runs, args.runs_dir)
    D.main_only(print_trends, sel, report / runs[0].variant / "trends.md")
    counts = {k: list(outcomes.values()).count(k) for k in sorted(set(outcomes.values()))}
    print(f"\n{len(runs)} runs: {counts}. Report: {report}/{runs[0].variant}/")
    return 1 if counts.get("failed") or counts.get("changed") else 0


def train_one(args, run: C.Run) -> str | int:
    """The run's outcome ('trained', 'skipped', 'changed', 'locked', 'failed'), or the exit status
    when a signal stopped it (it resumes when the same command runs again)."""
    try:
        return R.execute(run, args.runs_dir, force=args.force, progress=progress(args))[0]
    except Stopped as e:
        print(f"\n[stopped] {run.name}: {e} ({e.signal}). Rerun the same command to resume.", flush=True)
        return exit_code(e.signal)
    except KeyboardInterrupt as e:
        where = f" ({e})" if str(e) else ""
        print(f"\n[interrupted] {run.name}{where}. Rerun the same command to resume.", flush=True)
        return INTERRUPTED_EXIT
    except RunError as e:  # its message says what to do; the other runs go on
        print(f"[failed] {run.name}: {e}", flush=True)
        return "failed"
    except OSError as e:  # read-only or full disk, a missing file: every later run would fail alike
        print(f"[failed] {run.name}: {e}. {os_fix(e)}", flush=True)
        return 1
    except Exception as e:  # one failed run does not stop the others; its folder stays resumable
        if not isinstance(e, D.RankFailed):  # the rank that failed shows the traceback
            traceback.print_exc()
        print(f"[failed] {run.name}: {type(e).__name__}: {e} (rerun the same command to resume)")
        return "failed"


def progress(args) -> bool | str:
    """Progress output: tqdm bars on a terminal; plain, flushed lines for log files and --quiet."""
    return "lines" if args.quiet or not sys.stdout.isatty() else "bar"
