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

import errno
import os
import sys
import traceback
from contextlib import redirect_stdout
from dataclasses import replace

from ablations.cli.launch.options import check as check_launch
from ablations.cli.launch.submit import submit_runs
from ablations.cli.output import bench, dry_run_text, print_table, print_trends, refused_text, show_list
from ablations.cli.parser import parser
from ablations.data import check_data
from ablations.data.common import repeats
from ablations.errors import RunError
from ablations.study import config as C
from ablations.study import runs as R
from ablations.study.definitions import check_definition, save_definition
from ablations.study.identity import files_fingerprint
from ablations.study.status import status_text
from ablations.train import distributed as D
from ablations.train import memory_plan as M
from ablations.train.batching import plan_batch
from ablations.train.interrupt import INTERRUPTED_EXIT, Stopped, StopRequest, exit_code
from ablations.train.memory_plan import phase_runtime
from analysis.report import write_report


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


def check_data_once(runs: list[C.Run]) -> None:
    """The data of every run checked before any training (each distinct data config once)."""
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
            try:
                print(show_list(args.table, args.preset))
            except C.ConfigError as e:
                print(f"ablate.py: error: {e}", file=sys.stderr)
                return 2
            return 0
        sel, runs, refused = None, [], []  # --report reads every finished run; it needs no selection
        try:
            check_launch(args)
            if args.attn_backend is not None and not args.bench:
                raise C.ConfigError("--attn-backend applies to --bench only; add --bench or drop it.")
            if not args.report:
                sel = selection(args)
                runs, refused = C.resolve_all(sel)
                check_definition(args.runs_dir, C.selected_table(sel))
                if not runs:
                    raise C.ConfigError(f"Nothing to run: every entry is refused.\n{refused_text(refused)}")
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
            print(refused_text(refused) + dry_run_text(runs))
            return 0
        if args.status:
            print(refused_text(refused) + status_text(runs, args.runs_dir))
            return 0
        print(refused_text(refused), end="")
        if sel is not None and not args.only and not args.bench and rank == 0:
            try:  # a user table's rows, kept beside its runs for --report (study/definitions.py)
                save_definition(args.runs_dir, C.selected_table(sel))
            except OSError as e:
                print(f"ablate.py: error: {e}. {os_fix(e)}", file=sys.stderr)
                return 1
        if args.launcher:  # submits jobs and returns; each job runs this command with --only <run>
            return submit_runs(args, sel, runs, sys.argv[1:] if argv is None else argv, main)
        D.init_distributed()  # once, before any work: every rank joins here or fails here
        try:
            return run_command(args, sel, runs)
        finally:
            D.shutdown()


def planned(args, runs: list[C.Run]) -> tuple[list[C.Run], int]:
    """(runs with runtime.plan, --plan's exit status after printing the plans: 0 all fit, 1 not)."""
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
    for phase in C.PHASES[run.config["mode"]]:
        pc, cap = run.config[phase], run.config["runtime"].get("max_batch_per_device")
        try:
            cap = phase_runtime(run.config["runtime"], phase)[0]
            plan_batch(pc["batch_size"], world_size, cap, repeats(pc.get("aug")))
        except ValueError as e:  # a BatchPlanError, or a bad aug.repeated
            raise C.ConfigError(f"{run.name}, {phase}: {e}") from None


def run_command(args, sel: C.Selection | None, runs: list[C.Run]) -> int:
    """--report, --bench or training, the same on every rank (rank 0 writes and prints)."""
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
    where = f"sweeps/{runs[0].sweep['id']}" if runs[0].sweep else runs[0].variant
    print(f"\n{len(runs)} runs: {counts}. Report: {report}/{where}/")
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
