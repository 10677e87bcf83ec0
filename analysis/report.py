"""Write runs/report/: per variant (preset, or preset+hash of --set overrides) the Markdown and
CSV tables and the plots; an index.md that lists them. Deterministic: no timestamps, fixed order.
Every file is replaced atomically, so two invocations writing the report at once leave whole files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.errors import ConfigError
from ablations.store.atomic import write_atomic, write_csv_atomic
from ablations.study.config import MODALITIES, list_rows
from ablations.study.definitions import definitions
from ablations.train.reconstructions import FILE as RECONSTRUCTIONS
from analysis import differences, plots, provenance, speed_table, table3_plot, table_report, tables, trends
from analysis.collect import load_runs, new_report, no_recipe, paper_numbers, run_results, say_damaged
from analysis.entries import entries_table
from analysis.reconstructions import draw_reconstructions, load_arrays
from analysis.sweeps import write_sweeps

DIFF_TITLES = {
    "table1": "\n## Is each change more than noise? Each row minus the row before\n\n",
    "fig8": "\n## MAE minus supervised from scratch, same row\n\n",
    "table3": "\n## Is each entry more than noise? Each entry minus its sub-table's default\n\n",
}
TITLES = {
    "table1": "Table 1: simplifying MViTv2 into Hiera (MAE from row a on)",
    "table3": "Table 3: MAE ablations on row f (Hiera); * = default",
    "fig8": "Fig. 8: MAE vs supervised from scratch, per row",
}


def build_tables(
    df: pd.DataFrame, variant: str, paper: dict | None = None, speeds: dict | None = None
) -> dict[str, tuple[pd.DataFrame, str]]:
    paper = paper or paper_numbers()
    return {
        "table1": tables.table1(df, variant, paper, speeds),
        "table3": tables.table3(df, variant, paper),
        "fig8": tables.fig8(df, variant, paper),
    }


def tables_with_runs(df: pd.DataFrame, variant: str) -> list[str]:
    """The tables (in TITLES order) with a finished run of their own in this variant: the report
    writes only these. Runs a table shares with Table 1 (Table 3's defaults are row f's folder,
    Fig. 8's mvitv2 is Table 1's) do not count for it, so `--step f` writes Table 1 alone."""
    own = set(df.loc[df["variant"] == variant, "table"]) if len(df) else set()
    return [name for name in TITLES if name in own]


def render(name: str, variant: str, md: str, extra: str = "") -> str:
    note = "Paper: Hiera-L (Table 1, 3), Hiera-B (Fig. 8)."
    return f"# {TITLES[name]}\n\nRuns: `{variant}`. {note}\n\n{md}{extra}"


def speed_cache(runs_dir: Path, variant: str, table: str, modality: str) -> Path:
    """Side-by-side timings are cached beside the report of runs_dir (whatever `out` is)."""
    return Path(runs_dir) / "report" / variant / f"speed_{table}_{modality}.json"


def table1_speeds(df: pd.DataFrame, runs_dir: Path, variant: str, measure: bool = True) -> dict:
    """{modality: speed_table record} for the Table 1 rows with finished runs, timed side by side
    (cached; with measure=False only what is cached already). A modality with fewer than two such
    rows has nothing to compare: it is not timed (its runs' own throughput stands; `ablate.py
    --bench` still times a single row)."""
    out = {}
    for m in MODALITIES:
        runs = df[(df["table"] == "table1") & (df["modality"] == m) & (df["variant"] == variant)]
        configs = {
            row: runs[runs["entry"] == row]["config"].iloc[0]
            for row in list_rows()
            if row in set(runs["entry"])
        }
        path = speed_cache(runs_dir, variant, "table1", m)
        if len(configs) < 2:  # nothing to compare side by side: --bench times a single row
            continue
        try:
            if measure:
                out[m] = speed_table.cached_table_speeds(configs, path)
            elif path.exists():
                cached = json.loads(path.read_text())
                if not speed_table.usable(cached):
                    raise ValueError(f"{path} is not a speed table")
                if set(cached.get("rows", {})) == set(configs):  # timed for these rows, not others
                    out[m] = cached
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # a failed timing, a damaged cache
            why = (str(e).splitlines() or [""])[0][:120]
            say_damaged(f"{m} side-by-side speeds ({type(e).__name__}: {why})",
                        "the table shows each run's own throughput")  # fmt: skip
    return out


def speed_note(speeds: dict) -> str:
    """Says where the speed column comes from, per modality."""
    lines = []
    for m, s in speeds.items():
        st = s["settings"]
        lines.append(
            f"{m}: timed side by side on {s['device_name']}, {s['date']}: {st['rounds']} rounds in "
            f"{min(st.get('processes', 1), st['rounds'])} fresh processes, every row once per round "
            f"in a rotating order, {st['dtype']}, best of batch sizes "
            f"{st['batch_sizes']} ({st['warmup']} warmup + {st['iters']} timed iterations); speed = median "
            "over rounds, x mvitv2 = median of the per-round ratios [min-max over rounds]."
        )
    missing = [m for m in MODALITIES if m not in speeds]
    if missing:
        lines.append(f"{', '.join(missing)}: each run's own throughput (timed at its end, not side by side).")
    return "Speeds. " + " ".join(lines) + "\n\n"


def family_of(name: str, frame: pd.DataFrame, paper: dict, resolve: float | None) -> pd.DataFrame:
    """A table's differences as a family per modality (analysis.differences.family). The target
    effect: --resolve's points, else the paper's own step for Table 1's rows (none elsewhere)."""
    if resolve is not None:
        targets = [resolve] * len(frame)
    elif name == "table1":
        targets = differences.paper_steps(frame, paper)
    else:
        targets = None
    return differences.family(frame, targets)


def write_report(
    runs_dir, out: Path | None = None, measure_speed: bool = True, resolve: float | None = None
) -> Path:
    """measure_speed: time Table 1's rows side by side when no cached timing fits (else the
    cached ones only, falling back to the runs' own throughput). resolve: the target effect in
    points that every comparison's "seeds needed" is for (None: the paper's own steps)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(
            f"{runs_dir} does not exist: nothing to report. Train runs first (python ablate.py --step f), "
            "or pass --runs-dir with the folder that holds them."
        )
    out = Path(out) if out else runs_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    new_report()
    df = load_runs(runs_dir)
    paper = paper_numbers()
    index = ["# Report", "", f"{df['folder'].nunique()} finished runs under `{runs_dir}`.", ""]
    index += damaged_rows(df.attrs.get("damaged", []))
    index += table_report.damaged_definitions(runs_dir)
    for variant in sorted(df["variant"].dropna().unique()):
        vdir = out / variant
        vdir.mkdir(parents=True, exist_ok=True)
        written = tables_with_runs(df, variant)
        write_csv_atomic(run_results(df, variant), vdir / "runs.csv")
        speeds = table1_speeds(df, runs_dir, variant, measure_speed) if "table1" in written else {}
        built = build_tables(df, variant, paper, speeds)
        diff_of = {
            "table1": differences.table1_differences,
            "fig8": differences.fig8_differences,
            "table3": differences.table3_differences,
        }
        diffs = {
            name: family_of(name, diff_of[name](df, runs_dir, variant), paper, resolve) for name in written
        }
        for name in written:
            frame, md = built[name]
            extra = ""
            if name == "table1":
                md = speed_note(speeds) + md
                extra = "\n## Model sizes (ours, one sample)\n\n" + tables.model_sizes(df, variant)
            if name in diffs:
                extra = (
                    DIFF_TITLES[name]
                    + differences.NOTE
                    + (differences.TABLE3_NOTE if name == "table3" else "")
                    + "\n"
                    + differences.differences_markdown(diffs[name])
                    + extra
                )
                write_csv_atomic(diffs[name], vdir / f"{name}_differences.csv")
            extra += provenance.builds_markdown(provenance.table_runs(df, name, variant))
            write_atomic(vdir / f"{name}.md", render(name, variant, md, extra))
            write_csv_atomic(frame, vdir / f"{name}.csv")
        t1, f8 = built["table1"][0], built["fig8"][0]
        nr = no_recipe(df, variant)
        if "table1" in written:
            plots.table1_accuracy(t1, vdir, f"Table 1 accuracy per row ({variant})", nr)
            plots.table1_speed(t1, vdir, f"Table 1 speed per row ({variant})", nr)
            plots.acc_vs_speed(t1, f8, vdir, f"Accuracy vs throughput ({variant})", nr)
            plots.differences(
                diffs["table1"],
                vdir,
                "table1_differences",
                f"Table 1: each row minus the one before ({variant})",
                nr,
            )
        if "fig8" in written:
            plots.fig8(f8, vdir, f"Fig. 8: MAE vs supervised ({variant})", nr)
            plots.differences(
                diffs["fig8"], vdir, "fig8_differences", f"Fig. 8: MAE minus supervised ({variant})", nr
            )
        if "table3" in written:
            table3_plot.table3(built["table3"][0], vdir, f"Table 3: MAE ablations on row f ({variant})")
            plots.differences(
                diffs["table3"],
                vdir,
                "table3_differences",
                f"Table 3: each entry minus its default ({variant})",
            )
        index += [f"## {variant}", "", f"- [runs.csv]({variant}/runs.csv): every finished run's top-1"] + [
            f"- [{n}]({variant}/{n}.md) ([csv]({variant}/{n}.csv))" for n in written
        ]
        if {"table1", "fig8"} & set(written):  # the trends read Table 1's and Fig. 8's runs
            builds = provenance.builds_markdown(provenance.table_runs(df, "fig8", variant))
            assessed = trends.assess(df, runs_dir, variant)
            write_atomic(vdir / "trends.md", trends.trends_markdown(df, runs_dir, variant, assessed) + builds)
            write_csv_atomic(trends.trends_frame(assessed), vdir / "trends.csv")
            write_csv_atomic(trends.chance_frame(df, runs_dir, variant), vdir / "chance.csv")
            title = "trends: do the paper's three trends hold?"
            index += [f"- [{title}]({variant}/trends.md) ([csv]({variant}/trends.csv))"]
        index += table_report.write_tables(df, runs_dir, vdir, variant, resolve)
        figures = copy_reconstructions(runs_dir, df[df["variant"] == variant], vdir)
        index += [f"- plots: `{variant}/*.png`, `{variant}/*.pdf`"]
        index += [f"- MAE reconstructions: [{f.stem}]({variant}/{f.name})" for f in figures] + [""]
    sweeps = write_sweeps(load_runs(runs_dir, quiet=True, sweeps=True), runs_dir, out, resolve)
    index += ["## Sweeps", "", *sweeps, ""] if sweeps else []
    write_atomic(out / "index.md", "\n".join(index))
    return out


def damaged_rows(damaged: list) -> list[str]:
    """index.md lines: one row per damaged run folder (left out of every table)."""
    if not damaged:
        return []
    rows = [f"| `{name}` | damaged: {why} |" for name, why in damaged]
    return ["## Damaged runs (left out of every table)", "", "| run | state |", "|---|---|", *rows, ""]


def copy_reconstructions(runs_dir: Path, runs: pd.DataFrame, vdir: Path) -> list[Path]:
    """Each MAE run's reconstruction figure, drawn from pretrain/reconstructions.npz (saved when
    pretraining ends; folders from before that copy their reconstructions.png) as
    vdir/reconstructions_<table>_<entry>_<modality>_seed<N>.png; returns the files written. A
    damaged file is said once and skipped: it never stops the report."""
    out = []
    for r in runs[runs["mode"] == "mae"].sort_values("name").itertuples():
        pre = runs_dir / str(r.folder) / "pretrain"
        dst = vdir / f"reconstructions_{r.table}_{r.entry}_{r.modality}_seed{r.seed}.png"
        src = pre / RECONSTRUCTIONS
        try:
            if src.exists():
                if not dst.exists() or dst.stat().st_mtime_ns < src.stat().st_mtime_ns:
                    draw_reconstructions(load_arrays(src), dst)
            elif (pre / "reconstructions.png").exists():
                write_atomic(dst, (pre / "reconstructions.png").read_bytes())
            else:
                continue
        except ValueError as e:
            print(f"[damaged] {e}; the report goes on without this figure (redo it with --force on that "
                  f"run: the command that trained it with --only {r.name} --force)")  # fmt: skip
            continue
        out.append(dst)
    return out


def table_text(runs_dir, variant: str, name: str, modalities: tuple[str, ...] = MODALITIES) -> str:
    """The Markdown of one table for one variant, with columns for `modalities` only (what the CLI
    prints after a run; Table 1 with the side-by-side speeds the report cached)."""
    df = load_runs(runs_dir, quiet=True)  # the report written just before said what is damaged
    if name == "table1":
        speeds = table1_speeds(df, runs_dir, variant, False)
        return tables.table1(df, variant, paper_numbers(), speeds, modalities=modalities)[1]
    if name in ("table3", "fig8"):
        return tables.__dict__[name](df, variant, paper_numbers(), modalities=modalities)[1]
    report = Path(runs_dir) / "report" / variant
    parts = [report / f"{name}.md", report / f"{name}_interactions.md"]
    texts = [p.read_text().split("\n", 3)[-1] for p in parts if p.exists()]
    spec = definitions(runs_dir).get(name)
    if texts and spec is not None:  # the entries again, with columns for `modalities` only
        try:
            texts[0] = entries_table(df, runs_dir, variant, name, spec, modalities)[1]
        except ConfigError:  # a kept definition the schema no longer accepts: the report said so
            pass
    return "\n".join(texts)
