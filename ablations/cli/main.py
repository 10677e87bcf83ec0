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

import os
import sys
import traceback
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

from ablations.cli import estimate as E
from ablations.cli import rounds
from ablations.cli.devices import card_text, explicit_memory, launch_devices
from ablations.cli.launch.options import check as check_launch
from ablations.cli.launch.options import check_gpus
from ablations.cli.launch.submit import job_scripts, submit_rehearsal, submit_runs
from ablations.cli.output import (
    bench,
    dry_run_text,
    print_table,
    print_trends,
    refused_text,
    show_list,
    sweep_size,
)
from ablations.cli.parser import parser
from ablations.cli.rehearse import rehearse
from ablations.data import check_data, check_data_quick
from ablations.data.common import repeats
from ablations.errors import DETERMINISTIC, RunError, advice, kind_of, os_fix
from ablations.study import config as C
from ablations.study import failure, homes
from ablations.study import runs as R
from ablations.study.caveats import caveat_lines
from ablations.study.definitions import check_definition, save_definition
from ablations.study.identity import files_fingerprint
from ablations.study.provenance import build_at_start
from ablations.study.status import status_text
from ablations.study.sweep import CONFIRM_RUNS
from ablations.train import distributed as D
from ablations.train import memory_plan as M
from ablations.train.batching import BatchPlanError, plan_batch
from ablations.train.engine import eta_text
from ablations.train.interrupt import INTERRUPTED_EXIT, Stopped, StopRequest, exit_code
from ablations.train.memory_plan import phase_runtime
from analysis.collect import failed_parts
from analysis.report import write_report


def selection(args) -> C.Selection:
    table = None
    if args.table is not None:
        table = C.table_name(args.table)
        if C.is_figure(table):
            raise C.ConfigError(f"{table} is {C.table_flag(table)}, not --table {args.table}.")
    if args.fig is not None:
        figures = {C.table_flag(t).split()[-1]: t for t in C.list_tables() if C.is_figure(t)}
        if str(args.fig) not in figures:
            raise C.ConfigError(f"Unknown figure {args.fig!r}. Valid: {', '.join(figures)}.")
        table = figures[str(args.fig)]
    return C.Selection(
        table=table, step=args.step, mode=args.mode, modality=args.modality, preset=args.preset,
        sets=C.parse_sets(args.sets), seeds=args.seeds if isinstance(args.seeds, int) else args.seeds[1],
    )  # fmt: skip


def only(runs: list[C.Run], name: str) -> list[C.Run]:
    """--only: the one run of the selection with this folder name."""
    picked = [r for r in runs if r.name == name.strip("/")]
    if not picked:
        names = ", ".join(r.name for r in runs)
        raise C.ConfigError(f"--only {name!r} is not in this selection. Its runs: {names}")
    return picked


def check_data_once(runs: list[C.Run], check=check_data) -> None:
    """The data of every run checked before any training (each distinct data config once)."""
    seen = []
    for run in runs:
        if run.config["data"] not in seen:
            seen.append(run.config["data"])
            check(run.config["data"])


def main(argv: list[str] | None = None) -> int:
    """ablate.py's exit status: 0 all done, 1 a run failed, changed or is held by another
    process, 2 a bad command line or config (before any work), INTERRUPTED_EXIT (130) after
    Ctrl-C, PREEMPTED_EXIT (75) after SIGTERM/SIGUSR1, in any phase (interrupt.py). Under torchrun
    every rank runs this; only rank 0 prints to stdout."""
    args = parser().parse_args(argv)
    build_at_start()  # the tree this process's code came from, before anyone edits it
    rank = D.env_world()[0]
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull if rank else sys.stdout):
        # One stop request for the whole command: a signal outside a training step (data checks,
        # the report, measuring a model) stops at once with its exit status, never a traceback.
        with StopRequest():
            try:
                return command(args, argv)
            except KeyboardInterrupt as e:  # interrupt.Stopped included
                name = getattr(e, "signal", "SIGINT")
                print(f"\n[stopped] by {name}{f' ({e})' if str(e) else ''}. Finished work is kept; rerun "
                      "the same command to go on.", file=sys.stderr, flush=True)  # fmt: skip
                return exit_code(name)


def command(args, argv: list[str] | None) -> int:
    """main's work, under its stop request."""
    homes.forget()  # run folders are read afresh by every invocation (another may have added some)
    if args.list:
        try:
            print(show_list(args.table, args.preset))
        except C.ConfigError as e:
            print(f"ablate.py: error: {e}", file=sys.stderr)
            return 2
        return 0
    sel, runs, refused, comps = None, [], [], None  # --report reads every finished run; it needs no selection
    try:
        check_launch(args)
        if args.rehearse is not None:
            clash = [f for f in ("dry_run", "plan", "bench", "report", "status", "only") if getattr(args, f)]
            if clash or args.rehearse < 1:
                bad = f"--{clash[0].replace('_', '-')}" if clash else f"--rehearse {args.rehearse}"
                raise C.ConfigError(f"{bad}: --rehearse runs the selection itself (STEPS >= 1); drop one")
            if D.env_world()[1] > 1:
                raise C.ConfigError("--rehearse runs in one process: start it without torchrun "
                                    "(--devices N: the devices its time estimate is for)")  # fmt: skip
        if args.attn_backend is not None and not args.bench:
            raise C.ConfigError("--attn-backend applies to --bench only; add --bench or drop it.")
        if args.devices is not None and args.devices < 1:  # 0 would silently mean the default (8)
            raise C.ConfigError(f"--devices {args.devices}: give 1 or more devices, or drop it.")
        if not args.report:
            sel = selection(args)
            runs, refused = C.resolve_all(sel)
            check_definition(args.runs_dir, C.selected_table(sel))
            if not runs:
                raise C.ConfigError(f"Nothing to run: every entry is refused.\n{refused_text(refused)}")
            gpus = (C.load_preset(sel.preset).get("preset") or {}).get("gpus")
            check_gpus(args, sel.preset, gpus, str(runs[0].config["runtime"].get("device")))
        if args.only:
            runs = only(runs, args.only)
        elif runs and runs[0].sweep and len(runs) > CONFIRM_RUNS and not (args.yes or previews(args)):
            raise C.ConfigError(
                f"{sweep_size(runs).removeprefix('# ').strip()}: more than {CONFIRM_RUNS}. Add --yes to "
                "train them all (--dry-run lists them, --status shows where they stand)."
            )
        elif isinstance(args.seeds, tuple) and not (args.report or args.bench or args.plan):
            comps = rounds.family(args, sel, runs)  # --seeds LO..HI: trained in rounds
        if args.plan or args.device_mem is not None:
            runs, plans = planned(args, runs)
            if args.plan:
                return plans
        elif not (args.report or args.bench):
            runs = autoplanned(args, sel, runs)
        if not (args.dry_run or args.bench or args.report or args.status or args.plan):
            check_data_once(runs)
            for run in runs:
                check_batches(run, D.env_world()[1])
        elif args.dry_run:  # a preview fails where the run would: its data folder (not each file)
            check_data_once(runs, check_data_quick)
    except C.ConfigError as e:
        print(f"ablate.py: error: {e}", file=sys.stderr)
        return 2
    if args.rehearse is not None:  # a throwaway runs folder: nothing below (runs/, the report) is touched
        if args.launcher:
            return submit_rehearsal(args, sys.argv[1:] if argv is None else argv, main)
        return rehearse(args, runs, launch_devices(args)[0], args.rehearse)
    if args.dry_run:
        devices, devices_from = launch_devices(args)
        per_run, total = E.estimates(runs, devices)
        times = {name: E.run_line(name, est, notes, devices) for name, (est, notes) in per_run.items()}
        shown = dry_run_text(runs, args.runs_dir, devices, devices_from, times)
        notes = "".join(f"# note: {line}\n" for line in caveat_lines(sel.preset, runs)) if sel else ""
        print(refused_text(refused) + notes + (rounds.dry_run(args, runs, shown) if comps else shown))
        print(f"# {E.selection_line(total, len(runs), devices)}")
        if args.launcher:  # what would be submitted, submitting nothing
            print(job_scripts(args, runs, sys.argv[1:] if argv is None else argv, main))
        return 0
    if args.status:
        print(
            refused_text(refused)
            + (rounds.status(args, runs, comps) if comps else status_text(runs, args.runs_dir))
        )
        return 0
    print(refused_text(refused), end="")
    if sel is not None and not args.bench:  # a preset's measured limit for these runs: said, not refused
        for line in caveat_lines(sel.preset, runs):
            print(f"ablate.py: note: {line}", flush=True)
    if sel is not None and not args.only and not args.bench and D.env_world()[0] == 0:
        try:  # a user table's rows, kept beside its runs for --report (study/definitions.py)
            save_definition(args.runs_dir, C.selected_table(sel))
        except OSError as e:
            print(f"ablate.py: error: {e}. {os_fix(e, args.runs_dir)}", file=sys.stderr)
            return 1
    if args.launcher:  # submits jobs and returns; each job runs this command with --only <run>
        argv = sys.argv[1:] if argv is None else argv
        if comps:
            return rounds.submit(args, runs, comps, lambda todo: submit_runs(args, sel, todo, argv, main))
        return submit_runs(args, sel, runs, argv, main)
    D.init_distributed()  # once, before any work: every rank joins here or fails here
    try:
        if comps:
            return rounds.train(
                args, runs, comps, lambda todo, force: run_command(replace_ns(args, force=force), sel, todo)
            )
        return run_command(args, sel, runs)
    finally:
        D.shutdown()


def previews(args) -> bool:
    """The command only shows or reads (no training, no jobs)."""
    return bool(args.dry_run or args.status or args.plan or args.bench or args.report)


def replace_ns(args, **changes):
    """A copy of the parsed arguments with some values changed."""
    return type(args)(**{**vars(args), **changes})


def planned(args, runs: list[C.Run]) -> tuple[list[C.Run], int]:
    """(runs with runtime.plan, --plan's exit status after printing the plans: 0 all fit, 1 not)."""
    mem, mem_from = explicit_memory(args)
    devices, devices_from = launch_devices(args)
    try:
        plans = [(run, M.plan_run(run.config, mem, devices)) for run in runs]
    except (M.PlanError, BatchPlanError) as e:  # no plan fits, or the batch does not split
        raise C.ConfigError(str(e)) from None
    planned_runs = [replace(run, config=M.apply_plan(run.config, p, mem)) for run, p in plans]
    if args.plan:
        print(f"Memory plan: {devices} devices x {mem:g} GiB (devices: {devices_from}; memory: {mem_from})\n")
        print(M.plan_table([(run.name, p) for run, p in plans]))
        per_run, total = E.estimates(planned_runs, devices)
        print(f"\nTime estimate on {devices} devices ({devices_from}):\n")
        for name, (est, notes) in per_run.items():
            print(f"- {name}: {E.run_line(name, est, notes, devices).removeprefix('time: ')}")
        print(f"\n{E.selection_line(total, len(runs), devices)}")
    fit = all(p.fits for _, ps in plans for p in ps.values())
    return planned_runs, 0 if fit else 1


def autoplanned(args, sel: C.Selection, runs: list[C.Run]) -> list[C.Run]:
    """On CUDA, the runs whose per-device cap was sized by hand (runtime.sized_for_gib) get the
    memory plan for this device's memory (the smallest visible device's). An explicit --set
    runtime.max_batch_per_device wins, as --device-mem does (planned). Prints the plan line once.
    A preview (--dry-run) without a GPU here, or of a cluster job, shows the plan a card of the
    size the preset was sized for will get: what the run does on such a card."""
    mems = [] if args.launcher else M.device_memory_gib()
    if "runtime.max_batch_per_device" in sel.sets or not (mems or args.dry_run):
        return runs

    # A cap sized by hand stands in for the plan of one memory size: on a GPU the plan for its own
    # memory replaces it (at 80 GiB too: the plan measures, the hand guessed).
    rt = lambda run: run.config["runtime"]  # noqa: E731
    todo = [run for run in runs if rt(run)["device"] != "cpu" and rt(run).get("sized_for_gib")]
    if not todo:
        return runs
    sized = todo[0].config["runtime"]["sized_for_gib"]
    mem = round(min(mems), 1) if mems else M.planned_gib(sized)
    devices = launch_devices(args)[0]
    try:
        plans = {run.name: M.plan_run(run.config, mem, devices) for run in todo}
    except (M.PlanError, BatchPlanError) as e:  # no plan fits, or the batch does not split
        raise C.ConfigError(str(e)) from None
    first = plans[todo[0].name]
    split = ", ".join(f"{p} {pp.per_device} per device x {pp.accum} accumulation" for p, pp in first.items())
    if mems:
        line = (f"[plan] this GPU has {mem:g} GiB, the preset's batch cap was sized for {sized:g} GiB by "
                f"hand: planned for {mem:g} GiB ({split}; --plan --device-mem {mem:g} shows it all; "
                "--device-mem or --set runtime.max_batch_per_device overrides)")  # fmt: skip
    else:
        line = (f"[plan] previewed for {card_text(sized)}, the card the preset is sized for (no GPU "
                f"here): {split}; a GPU of another size gets its own plan, --device-mem N "
                "previews it")  # fmt: skip
    print(f"# {line}" if args.dry_run else line, flush=True)
    return [
        replace(r, config=M.apply_plan(r.config, plans[r.name], mem)) if r.name in plans else r for r in runs
    ]


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
            print(f"report written to {D.main_only(write_report, args.runs_dir, resolve=args.resolve)}")
        except (OSError, D.RankFailed) as e:  # a missing, read-only or full runs folder
            print(f"ablate.py: error: {fault_text(e, args.runs_dir / 'report')}", file=sys.stderr)
            return 2
        return 1 if parts_failed() else 0
    if args.bench:
        print(D.main_only(bench, runs, args.attn_backend or "math"))
        return 0
    files_fingerprint.cache_clear()  # data files are fingerprinted afresh by every invocation
    outcomes, folders = {}, {}
    with StopRequest() as stop:  # training shares it; a signal between runs stops before the next
        for i, run in enumerate(runs, 1):
            if signal := stop.agreed():
                print(f"\n[stopped] by {signal} before {run.name}. Rerun the same command to go on.")
                return exit_code(signal)
            left = left_text(runs[i - 1 :], runs, args.runs_dir, folders)
            print(f"\n== run {i} of {len(runs)}: {run.name} ({left})", flush=True)
            outcomes[run.name] = train_one(args, run)
            folders[run.name] = R.run_dir(args.runs_dir, run)  # where it trained, or the run it reused
            if isinstance(outcomes[run.name], int):  # stopped: the exit status
                return outcomes[run.name]
    # 0 means every run is done: a run another process holds ("locked") is not, so it is 1 as well.
    if args.only:  # one run of a cluster job: the submitting command (--wait) or --report writes the report
        return 1 if {"failed", "changed", "locked"} & set(outcomes.values()) else 0
    try:
        report = D.main_only(write_report, args.runs_dir, resolve=args.resolve)
    except (OSError, D.RankFailed) as e:
        if set(outcomes.values()) == {"skipped"} and getattr(e, "errno", None) in R.READ_ONLY:
            # every run was finished before: nothing is lost but a fresh report (a read-only disk)
            print(f"ablate.py: note: every run is finished; the report was not rewritten: {e}",
                  file=sys.stderr)  # fmt: skip
            report = Path(args.runs_dir) / "report"
        else:
            text = fault_text(e, args.runs_dir / "report")
            print(f"ablate.py: error: the runs are saved, but not the report: {text}", file=sys.stderr)
            return 1
    D.main_only(print_table, sel, runs, args.runs_dir)
    D.main_only(print_trends, sel, report / runs[0].variant / "trends.md")
    counts = {k: list(outcomes.values()).count(k) for k in sorted(set(outcomes.values()))}
    where = f"sweeps/{runs[0].sweep['id']}" if runs[0].sweep else runs[0].variant
    print(f"\n{len(runs)} runs: {counts}. Report: {report}/{where}/")
    return 1 if counts.get("failed") or counts.get("changed") or counts.get("locked") or parts_failed() else 0


def parts_failed() -> bool:
    """The report written last left a part out (a damaged table definition: said above)."""
    return bool(D.main_only(failed_parts))


def left_text(left: list[C.Run], runs: list[C.Run], runs_dir, folders: dict | None = None) -> str:
    """The selection's time left: the mean wall time of its finished runs (metrics.json) times its
    unfinished runs from this one on. folders: {run name: its folder}, looked up once per command
    (finding a run's folder reads its identity: not once per run and per run)."""
    folders = folders if folders is not None else {}
    where = lambda r: folders.get(r.name) or folders.setdefault(r.name, R.run_dir(runs_dir, r))  # noqa: E731
    walls = [m["wall_time_s"] for r in runs if isinstance(m := R.read_metrics(where(r)), dict)
             and isinstance(m.get("wall_time_s"), (int, float))]  # fmt: skip
    todo = sum(R.read_metrics(where(r)) is None for r in left)
    if not todo:
        return "selection: finished runs only"
    if not walls:
        return f"selection: {todo} runs to train; an estimate once one has finished"
    eta = eta_text(sum(walls) / len(walls) * todo)
    return f"selection: {todo} runs to train, ETA {eta} at the {len(walls)} finished runs' mean wall time"


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
        return failed(args, run, str(e), kind_of(e))
    except OSError as e:  # read-only or full disk, a file for a folder: every later run would fail alike
        failed(args, run, fault_text(e, args.runs_dir), kind_of(e))
        return 1
    except Exception as e:  # one failed run does not stop the others; its folder stays resumable
        if not isinstance(e, D.RankFailed):  # the rank that failed shows the traceback
            traceback.print_exc()
        kind = kind_of(e)
        fix = "Fix the config or the code (traceback above)" if kind == DETERMINISTIC else ""
        return failed(args, run, f"{type(e).__name__}: {e}. {advice(kind, fix)}", kind)


def fault_text(e: Exception, folder) -> str:
    """An environment fault in one line: what failed, the fix, whether rerunning helps."""
    if isinstance(e, OSError) and e.errno is None:  # a message of ours: it already names the fix
        return str(e)
    fix = os_fix(e, str(folder)) if isinstance(e, OSError) else ""
    return f"{str(e).rstrip('.')}. {advice(kind_of(e), fix)}"


def failed(args, run: C.Run, message: str, kind: str) -> str:
    """Print the [failed] line (its kind said) and keep it in <run>/failed.json for --status."""
    if kind not in message:
        message = f"{message.rstrip('.')}. {advice(kind)}"
    print(f"[failed] {run.name}: {message}", flush=True)
    if D.env_world()[0] == 0:
        failure.record(R.run_dir(args.runs_dir, run), kind, message)
    return "failed"


def progress(args) -> bool | str:
    """Progress output: tqdm bars on a terminal; plain, flushed lines for log files and --quiet."""
    return "lines" if args.quiet or not sys.stdout.isatty() else "bar"
