"""`ablate.py ... --seeds LO..HI`: the rounds of analysis/seed_rounds.py on the command line.

Each round is the ordinary command on the round's runs (train here, or submit with --launcher);
the next round is planned from the finished runs on disk, so a killed or resumed command, and a
cluster user rerunning it after the jobs ended, continue where the rounds stand."""

from __future__ import annotations

from ablations.study import config as C
from ablations.study.sources import table_source
from ablations.study.status import status_text
from analysis import seed_rounds as SR
from analysis.collect import paper_numbers

ROUND_TABLES = "Table 1, Fig. 8, the interaction tables (loo, one) and table files"


def family(args, sel: C.Selection, runs: list[C.Run]) -> list[SR.Comparison]:
    """The comparisons the rounds decide on; a ConfigError (exit 2) where rounds do not apply."""
    if runs and runs[0].sweep:
        raise C.ConfigError("--seeds LO..HI does not apply to a sweep (--set k=a,b): give --seeds N.")
    table = C.selected_table(sel)
    spec = C.load_table(table)
    if table == "table3" or (table_source(table).builtin and table not in ("table1", "fig8")
                             and not spec.get("interaction")):  # fmt: skip
        raise C.ConfigError(f"--seeds LO..HI decides {ROUND_TABLES}; for {table} give --seeds N.")
    if sel.step is not None:
        raise C.ConfigError("--seeds LO..HI decides comparisons between entries: drop --step.")
    comps = SR.comparisons(runs, spec, args.resolve, paper_numbers())
    if not any(c.target > 0 for c in comps):
        raise C.ConfigError(
            "--seeds LO..HI needs a target effect for its comparisons: add --resolve POINTS, e.g. --resolve 2"
        )
    return comps


def dry_run(args, runs: list[C.Run], shown: str) -> str:
    """The dry run's text (`shown`: output.dry_run_text of every run) headed by what rounds may train."""
    lo, hi = args.seeds
    first = sum(1 for r in runs if r.seed - min(x.seed for x in runs) < lo)
    head = (f"# --seeds {lo}..{hi}: rounds. The first trains {first} runs; later rounds add seeds only where "
            f"a comparison is undecided, so at most these {len(runs)} runs (all shown).\n")  # fmt: skip
    return head + shown


def status(args, runs: list[C.Run], comps: list[SR.Comparison]) -> str:
    lo, hi = args.seeds
    p = SR.plan(args.runs_dir, runs, comps, lo, hi)
    return (
        status_text(p.planned, args.runs_dir)
        + f"\n\nrounds (--seeds {lo}..{hi}): "
        + ("\n".join(p.lines) + f"\n(at most {len(runs)} runs)")
    )


def train(args, runs: list[C.Run], comps: list[SR.Comparison], run_round) -> int:
    """run_round(round's runs, force) -> exit status, once per round until none adds a seed. Each
    round's runs are the unfinished ones, so --force retrains only what an earlier build (or
    config) trained; the finished plan reruns nothing (force off) and writes the report."""
    lo, hi = args.seeds
    while True:
        p = SR.plan(args.runs_dir, runs, comps, lo, hi)
        print(f"\n== rounds (--seeds {lo}..{hi}): " + "\n".join(p.lines), flush=True)
        rc = run_round(p.todo or p.planned, args.force and not p.done)
        if rc or p.done:
            return rc


def submit(args, runs: list[C.Run], comps: list[SR.Comparison], submit_round) -> int:
    """--launcher: submit the current round's jobs; with --wait, each later round's after it."""
    lo, hi = args.seeds
    while True:
        p = SR.plan(args.runs_dir, runs, comps, lo, hi)
        print(f"\n== rounds (--seeds {lo}..{hi}): " + "\n".join(p.lines), flush=True)
        if p.done:
            return 0
        rc = submit_round(p.todo)
        if rc or not args.wait:
            if not rc:
                print("Rerun this command once these jobs have finished: it submits the next round.")
            return rc
