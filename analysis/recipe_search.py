"""A small recipe grid on one row, kept in a file, run as ordinary ablate.py runs.

    python -m analysis.recipe_search laptop              # ablations/study/searches/laptop.yaml
    python -m analysis.recipe_search laptop --dry-run    # the commands, nothing trained
    python -m analysis.recipe_search path/to/grid.yaml --runs-dir runs

The grid file names a preset, a row, optionally a modality (default: the preset's first), a seed
count and points ({name: {mode:, sets: {key: value}, levers: plain words}});
each point is `ablate.py --step <row> --mode <mode> --preset <preset> --seeds <n> --set ...` with
--runs-dir <runs-dir>/search/<grid>, so a point is resumable and reused when finished like any
run. Afterwards results.md there lists every point by top-1 (mean ± std over seeds), with its
settings, training wall time and what is missing; `--csv PATH` also writes that table as a CSV
headed by the command and date (the docs' table of a search is such a file, e.g.
analysis/figures/laptop/recipe_search.csv, rendered by python -m analysis.docs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ablations.store.atomic import write_atomic
from ablations.store.measurements import measurement_csv
from ablations.study import runs as R
from ablations.study.config import ConfigError, Selection, parse_sets, resolve

GRIDS = Path(__file__).resolve().parent.parent / "ablations" / "study" / "searches"


def load_grid(name: str) -> tuple[str, dict]:
    """(grid name, grid) from a file path or a name in ablations/study/searches/."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else GRIDS / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in GRIDS.glob("*.yaml"))
        raise ConfigError(f"no grid {name!r} ({path}); known grids: {known}")
    grid = yaml.safe_load(path.read_text()) or {}
    for key in ("preset", "row", "points"):
        if key not in grid:
            raise ConfigError(f"{path}: the grid needs a {key!r} entry")
    return path.stem, grid


def point_selection(grid: dict, point: dict) -> Selection:
    """The ablate.py selection of one point (checked like a command line: ConfigError)."""
    return Selection(
        step=grid["row"],
        mode=point.get("mode"),
        modality=grid.get("modality"),
        preset=grid["preset"],
        sets=dict(point.get("sets") or {}),
        seeds=int(grid.get("seeds", 1)),
    )


def point_command(grid: dict, point: dict, runs_dir: Path) -> list[str]:
    sel = point_selection(grid, point)
    cmd = [sys.executable, "ablate.py", "--step", sel.step, "--preset", sel.preset]
    cmd += ["--seeds", str(sel.seeds), "--runs-dir", str(runs_dir), "--quiet"]
    if sel.mode:
        cmd += ["--mode", sel.mode]
    if sel.modality:
        cmd += ["--modality", sel.modality]
    if sel.sets:
        cmd += [
            "--set",
            *(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sel.sets.items()),
        ]
    return cmd


def point_results(grid: dict, point: dict, runs_dir: Path) -> list[dict]:
    """metrics.json of each finished seed of the point (unfinished seeds are left out)."""
    out = []
    for run in resolve(point_selection(grid, point)):
        metrics = R.read_metrics(R.run_dir(runs_dir, run))
        if metrics and metrics.get("top1") is not None:
            out.append(metrics)
    return out


def results_table(name: str, grid: dict, runs_dir: Path) -> str:
    """Markdown: one line per point, best top-1 first; unfinished points last."""
    seeds = int(grid.get("seeds", 1))
    lines = []
    for label, point in grid["points"].items():
        point = point or {}
        done = point_results(grid, point, runs_dir)
        top1 = [m["top1"] for m in done]
        mean = statistics.mean(top1) if top1 else float("-inf")
        spread = f" ± {statistics.stdev(top1):.1f}" if len(top1) > 1 else ""
        shown = f"{mean:.1f}{spread}" if top1 else "–"
        wall = f"{statistics.mean(m['wall_time_s'] for m in done) / 60:.1f}" if done else "–"
        sets = ", ".join(f"{k}={v}" for k, v in (point.get("sets") or {}).items()) or "(preset)"
        state = f"{len(top1)}/{seeds} seeds" if len(top1) < seeds else ""
        lines.append(
            (mean, f"| {label} | {point.get('mode') or 'mae'} | {sets} | {shown} | {wall} | {state} |")
        )
    lines.sort(key=lambda t: -t[0])
    head = (
        f"# Recipe search `{name}`: row {grid['row']}, preset {grid['preset']}, {seeds} seed(s)\n\n"
        f"Written {time.strftime('%Y-%m-%d %H:%M')}; top-1 on the preset's validation set, mean ± std "
        "over seeds; wall = minutes per run (all phases).\n\n"
        "| point | mode | settings | top-1 | wall (min) | missing |\n|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(line for _, line in lines) + "\n"


CSV_COLUMNS = ["point", "mode", "settings", "top1", "top1_std", "seeds", "wall_min"]


def results_csv(grid: dict, points: dict, runs_dir: Path, command: str) -> str:
    """The results table as CSV (CSV_COLUMNS, best top-1 first, unfinished points last, blank
    where a point has no number), after a '#' line naming `command` and the date. `points`: the
    grid's own points, whose settings the file shows (what --set added to every point is in the
    command)."""
    lines = []
    for label, point in points.items():
        point = point or {}
        done = point_results(grid, grid["points"][label], runs_dir)
        top1 = [m["top1"] for m in done]
        walls = [m["wall_time_s"] for m in done if isinstance(m.get("wall_time_s"), (int, float))]
        sets = ", ".join(f"{k}={v}" for k, v in (point.get("sets") or {}).items())
        lines.append([label, point.get("mode") or "mae", sets,
                      f"{statistics.mean(top1):.1f}" if top1 else "",
                      f"{statistics.stdev(top1):.1f}" if len(top1) > 1 else "", len(top1),
                      f"{statistics.mean(walls) / 60:.1f}" if walls else ""])  # fmt: skip
    lines.sort(key=lambda r: -float(r[3]) if r[3] else float("inf"))
    return measurement_csv(command, CSV_COLUMNS, lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.recipe_search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("grid", help="a grid name in ablations/study/searches/ (e.g. laptop) or a .yaml path")
    parser.add_argument(
        "--runs-dir", default="runs", help="runs go to <runs-dir>/search/<grid> (default: runs)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print each point's command; train nothing")
    parser.add_argument("--only", nargs="+", metavar="POINT", help="run only these points")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="extra",
                        help="added to every point's settings (e.g. runtime.threads=1)")  # fmt: skip
    parser.add_argument("--csv", metavar="PATH", help="also write the results table as CSV to PATH "
                        "(e.g. analysis/figures/laptop/recipe_search.csv, which the docs show)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        name, grid = load_grid(args.grid)
        own = grid["points"]
        extra = parse_sets(args.extra)
        points = {
            k: {**(v or {}), "sets": {**((v or {}).get("sets") or {}), **extra}}
            for k, v in grid["points"].items()
        }
        grid = {**grid, "points": points}
        unknown = sorted(set(args.only or []) - set(points))
        if unknown:
            raise ConfigError(f"unknown point(s) {unknown}; the grid has {list(points)}")
        for point in points.values():  # every point checked before any work
            resolve(point_selection(grid, point))
    except ConfigError as e:
        print(f"python -m analysis.recipe_search: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.runs_dir) / "search" / name
    root = Path(__file__).resolve().parent.parent
    failed = []
    for label, point in points.items():
        if args.only and label not in args.only:
            continue
        cmd = point_command(grid, point, out)
        print(f"== {label}: {' '.join(cmd[1:])}", flush=True)
        if not args.dry_run and subprocess.run(cmd, cwd=root).returncode != 0:
            failed.append(label)
    if args.dry_run:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    table = results_table(name, grid, out)
    write_atomic(out / "results.md", table)
    print(f"\n{table}\nwritten to {out / 'results.md'}")
    if args.csv:
        given = argv if argv is not None else sys.argv[1:]
        command = " ".join(["python -m analysis.recipe_search", *given])
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(args.csv), results_csv(grid, own, out, command))
        print(f"written to {args.csv}")
    if failed:
        print(f"points that did not finish: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
