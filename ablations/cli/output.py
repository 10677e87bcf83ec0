"""What ablate.py prints: --list, --dry-run, --bench, and the table and trends after training."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ablations.study import config as C
from ablations.study import homes
from ablations.study import sources as S
from ablations.study import sweep as W
from ablations.train import distributed as D
from ablations.train.batching import describe
from ablations.train.memory_plan import phase_runtime
from analysis.collect import paper_numbers
from analysis.report import table_text
from analysis.speed_table import bench_text
from analysis.trends import verdicts
from models.steps import row_changes


def origin_of(ref: str, kind: str, source) -> tuple[str, str]:
    """(name, where it comes from) of a listed table or preset: a built-in name's file in the
    package, or a user file (its name: the file's `name:` or stem)."""
    if not S.is_path(ref):
        return ref, f"built-in {C.source(kind)}{ref}.yaml"
    src = source(ref)
    return src.name, src.origin


def show_list(table: str | None = None, preset: str | None = None) -> str:
    """Rows, tables and presets, each list read from its files (the lists --help shows), each
    entry with where it comes from (a built-in file, or the user files given with --table /
    --preset)."""
    rows = row_changes()
    paper = paper_numbers()
    lines = [f"Rows (--step; from {C.source('rows')}, each = previous + one change; tables add inline rows):"]
    for row in C.list_rows():
        label = paper["table1"]["rows"].get(row, {}).get("label", "")
        changes = ", ".join(f"{k}={v}" for k, v in (rows.get(row) or {}).items())
        lines.append(f"  {row:8s} {label}  [{changes}]")
    lines.append(f"\nTables (--table N / --fig N; from {C.source('tables')}; or --table <file.yaml>):")
    extra = [table] if table and S.is_path(table) else []
    for t in C.list_tables() + extra:
        name, origin = origin_of(t, "tables", S.table_source)
        spec = C.load_table(t)
        n = {m: len(C.table_entries(t, m)) for m in C.MODALITIES}
        runs = f"{n['image']} image / {n['video']} video runs"
        flag = f"--table {t}" if t in extra else C.table_flag(t)
        lines.append(f"  {name:8s} {flag:10s} {spec.get('title', '')}  ({runs})  <- {origin}")
    lines.append(f"\nPresets (--preset; from {C.source('presets')}; or --preset <file.yaml>):")
    extra = [preset] if preset and S.is_path(preset) else []
    for p in C.list_presets() + extra:
        name, origin = origin_of(p, "presets", S.preset_source)
        preset = C.load_preset(p)
        meta, modalities = preset.get("preset", {}), ", ".join(C.preset_modalities(preset))
        lines.append(f"  {name:10s} {meta.get('description', '')}  [{modalities}]  <- {origin}")
    lines.append(f"\nModes: {', '.join(C.MODES)}.  Modalities: {', '.join(C.MODALITIES)}.")
    return "\n".join(lines)


def refused_text(refused: list[C.Refused]) -> str:
    """The entries a table leaves out (refused: explain), one line each with the reason."""
    return "".join(f"# [refused] {r.table}/{r.entry} ({r.modality}): {r.reason}\n" for r in refused)


def dry_run_text(
    runs: list[C.Run],
    runs_dir: Path = Path("runs"),
    world: int | None = None,
    world_from: str = "WORLD_SIZE",
    times: dict | None = None,
) -> str:
    """Each run's resolved config as YAML, headed by comments: its folder (or the folder it reuses:
    the same resolved config trained under another name), its sweep point, and how each phase's
    global batch splits over the processes the command will get (`world`: --devices, a job's
    nodes x tasks, WORLD_SIZE) with the memory plan's cap and checkpointed blocks, if it has one,
    and the time estimate. A sweep starts with its size."""

    world = D.env_world()[1] if world is None else world
    docs = []
    for run in runs:
        home = homes.reuses(runs_dir, run)
        point = W.point_label(run.sweep)
        head = f"# run: {run.name}\n" + (f"# sweep point: {point}\n" if point else "")
        head += f"# reuses {home} (the same resolved config; trained once)\n" if home else ""
        phases = C.PHASES[run.config["mode"]]
        plan = run.config["runtime"].get("plan") or {}
        head += f"# devices: {world} ({world_from})"
        head += f", {plan['device_mem_gib']:g} GiB each (memory plan)\n" if plan else "\n"
        for p in phases:
            cap, ckpt = phase_runtime(run.config["runtime"], p)  # the memory plan's, if any
            blocks = (plan.get(p) or {}).get("blocks")
            ckpt_text = "all" if ckpt is True else str(int(ckpt or 0))
            ckpt_text = f"{int(ckpt)}/{blocks}" if blocks else ckpt_text
            head += f"# {p}: {describe(run.config[p], world, cap)}; checkpointed blocks {ckpt_text}\n"
        if times and run.name in times:  # the time estimate (cli/estimate.py)
            head += f"# {times[run.name]}\n"
        docs.append(head + yaml.safe_dump(run.config, sort_keys=False))
    return (sweep_size(runs) if runs and runs[0].sweep else "") + "---\n".join(docs)


def sweep_size(runs: list[C.Run]) -> str:
    """'# sweep <id>: P points x E entries x S seeds = N runs' (a YAML comment)."""
    points = len({json.dumps(r.sweep["values"], sort_keys=True) for r in runs})
    entries, seeds = len({(r.table, r.entry) for r in runs}), len({r.seed for r in runs})
    return (f"# sweep {runs[0].sweep['id']}: {points} points x {entries} entries x {seeds} seeds = "
            f"{len(runs)} runs\n")  # fmt: skip


def bench(runs: list[C.Run], attn_backend: str = "math") -> str:
    """Params, MACs and throughput of each run's classifier on this machine (no training), timed
    side by side (analysis.speed_table), beside the paper's Table 1 ratios (A100 fp16, size L)."""

    return bench_text({run.entry: run.config for run in runs}, attn_backend)


def print_table(sel: C.Selection, runs: list[C.Run], runs_dir: Path) -> None:
    """The table that was asked for (for --step: its header and that row), ours beside the paper's,
    with columns for the modality the selection ran only."""

    if runs[0].sweep:  # one table over every point: the report's
        path = Path(runs_dir) / "report" / "sweeps" / runs[0].sweep["id"] / "sweep.md"
        print(f"\nSweep ({path}):\n\n{path.read_text().split(chr(10), 2)[-1] if path.exists() else ''}")
        return
    name = S.table_source(C.selected_table(sel)).name
    ran = {run.modality for run in runs}
    text = table_text(runs_dir, runs[0].variant, name, tuple(m for m in C.MODALITIES if m in ran))
    if sel.step is not None and name in C.PAPER_TABLES:
        lines = text.splitlines()
        # Table 3's rows are "| <group> | <value> |" for its entry <group>-<value>
        row = f"| {' | '.join(sel.step.split('-', 1))} |" if name == "table3" else f"| {sel.step} |"
        text = "\n".join(lines[:2] + [ln for ln in lines[2:] if ln.startswith(row)]) + "\n"
    print(f"\n{name} ({runs[0].variant}, {runs[0].modality}), ours beside the paper's:\n")
    print(text)


def print_trends(sel: C.Selection, trends_md: Path) -> None:
    """After --table 1 / --fig 8: whether the paper's three trends hold (the report's trends.md)."""

    if sel.step is None and C.selected_table(sel) in ("table1", "fig8") and trends_md.exists():
        print(f"\nThe paper's trends at this scale ({trends_md}):\n{verdicts(trends_md.read_text())}", end="")
