"""The views analysis.docs writes into the pages: each turns the results files of one preset
folder (analysis/figures/<preset>/, the report's CSVs) into a Markdown table or one number.
A marker `<!-- results: cpu summary image -->` calls VIEWS["summary"](Results(cpu folder), "image").
Every view reads its columns by name, so a report CSV with more columns still renders."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from ablations.study.config import list_rows, load_table
from analysis.differences import RESOLUTION_NOTE, interval_text, resolution_markdown
from analysis.interactions import COMPONENTS
from analysis.tables import UNITS, markdown, table3_entries

DASH = "–"


# ----------------------------------------------------------------------------- results files


class Results:
    """The results files of one preset folder (analysis/figures/<preset>/), read on first use.
    Leading '#' lines (the provenance header of a transcribed file) are not data."""

    def __init__(self, folder: Path):
        self.folder, self._frames = Path(folder), {}

    def frame(self, name: str, as_written: bool = False) -> pd.DataFrame:
        """The CSV as numbers, or (as_written) every value as the text the file holds ('0.20'
        stays '0.20'; a blank is '')."""
        if (name, as_written) not in self._frames:
            path = self.folder / f"{name}.csv"
            if not path.exists():
                raise DocsError(f"{path} does not exist: publish a report that has it (--publish)")
            lines = path.read_text().splitlines(keepends=True)
            while lines and lines[0].startswith("#"):
                lines.pop(0)
            kw = {"dtype": str, "na_filter": False} if as_written else {"na_values": [""]}
            self._frames[name, as_written] = pd.read_csv(
                io.StringIO("".join(lines)), keep_default_na=False, **kw
            )
        return self._frames[name, as_written]

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.csv").exists()

    def runs(self, table: str, entry: str, modality: str, mode: str) -> pd.DataFrame:
        """The finished runs of one entry: seed and top1 per line, in seed order."""
        df = self.frame("runs")
        pick = (df["table"] == table) & (df["entry"] == entry) & (df["modality"] == modality)
        return df[pick & (df["mode"] == mode)].sort_values("seed")

    def supervised(self, row: str, modality: str) -> pd.DataFrame:
        """Fig. 8's runs of a row (row mvitv2's are Table 1's: one folder), as analysis.tables."""
        runs = self.runs("fig8", row, modality, "supervised")
        return runs if len(runs) else self.runs("table1", row, modality, "supervised")


class DocsError(ValueError):
    """A marker or results file the generator cannot use: one line naming it."""


# ----------------------------------------------------------------------------- formats


def num(x: float, digits: int = 1) -> str:
    return DASH if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def count(n) -> int:
    return 0 if n is None or (isinstance(n, float) and math.isnan(n)) else int(n)


def mean_std(mean: float, std: float, n) -> str:
    n = count(n)
    if n == 0 or math.isnan(mean):
        return DASH
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


def seed_list(runs: pd.DataFrame | pd.Series, sep: str = ", ") -> str:
    values = runs["top1"] if isinstance(runs, pd.DataFrame) else runs
    return sep.join(f"{v:.1f}" for v in values)


def comparison(results: Results, family: str, label: str, modality: str) -> str:
    """'+16.3 [+5.8, +25.9]' (n.d. when the interval contains 0) of one line of
    <family>_differences.csv, or – when the report has none."""
    if not results.has(f"{family}_differences"):
        return DASH
    df = results.frame(f"{family}_differences")
    hit = df[(df["comparison"] == label) & (df["modality"] == modality)]
    if hit.empty or math.isnan(hit["diff"].iloc[0]):
        return DASH
    return interval_text(verdicts(hit.iloc[0].to_dict()))


def flag(value) -> bool | None:
    """A verdict column read back from CSV ('True', 'False', 1.0, blank) as True / False / None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value).lower() in ("true", "1", "1.0")


def verdicts(rec: dict) -> dict:
    """A differences line with its raw and Holm verdicts as bools (Holm None where not given)."""
    rec = dict(rec)
    rec["distinguishable"] = bool(flag(rec["distinguishable"]))
    if "adjusted" in rec:
        rec["adjusted"] = flag(rec["adjusted"])
    return rec


def drop_empty_columns(header: list[str], rows: list[list[str]], keep: int = 1) -> str:
    """markdown() without the columns (after the first `keep`) that have no number in any row."""
    cols = [i for i in range(len(header)) if i < keep or any(r[i] != DASH for r in rows)]
    return markdown([header[i] for i in cols], [[r[i] for i in cols] for r in rows])


# ----------------------------------------------------------------------------- views


def view_summary(results: Results, modality: str) -> str:
    """Table 1 (MAE) beside Fig. 8 (supervised) per row: mean ± std (seed values), the step from
    the row before, and MAE minus supervised, each with its interval where the report has one."""
    t1 = results.frame("table1").set_index("row")
    f8 = results.frame("fig8").set_index("row")
    rows, n_mae, n_sup = [], set(), set()
    for row in list_rows():
        mae_runs = results.runs("table1", row, modality, "mae")
        sup_runs = results.supervised(row, modality)
        mae = DASH  # Table 1's first row is trained supervised: its runs are the supervised column's
        if row != list_rows()[0]:
            mae = mean_std(
                t1.at[row, f"{modality}_top1"],
                t1.at[row, f"{modality}_top1_std"],
                t1.at[row, f"{modality}_seeds"],
            )
        if len(mae_runs) > 1:
            mae += f" ({seed_list(mae_runs)})"
        n = f8.at[row, f"{modality}_supervised_seeds"]
        sup = mean_std(f8.at[row, f"{modality}_supervised_top1"], f8.at[row, f"{modality}_supervised_std"], n)
        if len(sup_runs) > 1:
            sup += f" ({seed_list(sup_runs)})"
        n_mae.add(count(t1.at[row, f"{modality}_seeds"]) if row != list_rows()[0] else 0)
        n_sup.add(count(n))
        prev = list_rows()[list_rows().index(row) - 1] if row != list_rows()[0] else None
        step = comparison(results, "table1", f"{row} - {prev}", modality) if prev else DASH
        gap = comparison(results, "fig8", f"{row}: MAE - supervised", modality)
        rows.append([row, mae, step, sup, gap])
    seeds = lambda ns: ", ".join(f"{k} seed{'s' * (k > 1)}" for k in sorted(ns - {0}))  # noqa: E731
    header = [
        "row",
        f"MAE, {seeds(n_mae)}",
        "Δ [95% CI]",
        f"supervised, {seeds(n_sup)}",
        "MAE - supervised [95% CI]",
    ]
    return "\n" + drop_empty_columns(header, rows)


def view_table3(results: Results, modality: str) -> str:
    """Table 3 per sub-table: each trained entry's top-1 and its difference to the default (the
    preset's own setting, whose runs are Table 1's row f) over the seeds both have; the interval
    where the report's table3_differences.csv has it, else the plain difference."""
    t3 = results.frame("table3")
    default_runs = results.runs("table1", "f", modality, "mae").set_index("seed")["top1"]
    paper = {g: spec.get("title", g) for g, spec in load_table("table3")["groups"].items()}
    lines = []
    for group, title in paper.items():
        cells = []
        for name in (n for n in table3_entries() if n.startswith(group + "-")):
            value = name.split("-", 1)[1]
            rec = t3[(t3["group"] == group) & (t3["value"].astype(str) == value)]
            if rec.empty or bool(rec[f"{modality}_default"].iloc[0]):
                continue
            runs = results.runs("table3", name, modality, "mae").set_index("seed")["top1"]
            if runs.empty:
                continue
            seeds = runs.index.intersection(default_runs.index)
            label = f"{group}: {value} - "
            ci = DASH
            if results.has("table3_differences"):
                d = results.frame("table3_differences")
                hit = d[d["comparison"].str.startswith(label) & (d["modality"] == modality)]
                ci = comparison(results, "table3", hit["comparison"].iloc[0], modality) if len(hit) else DASH
            diff = (runs[seeds] - default_runs[seeds]).mean() if len(seeds) else math.nan
            delta = ci if ci != DASH else (f"{diff:+.1f}" if not math.isnan(diff) else DASH)
            cells.append(f"{value}: {seed_list(runs, ' / ')} ({delta})")
        if cells:
            lines.append([title, "; ".join(cells), paper_deltas(t3[t3["group"] == group], modality)])
    head = ["sub-table", "entry: top-1 (entry - default)", "paper: entry - default (Hiera-L)"]
    return "\n" + markdown(head, lines)


def paper_deltas(group: pd.DataFrame, modality: str) -> str:
    """'default 0.6; 0.5 -0.1, 0.7 -0.3': the paper's entries against its default."""
    rows = group[group[f"{modality}_paper_top1"].notna()]
    default = rows[rows[f"{modality}_paper_default"].astype(bool)]
    if default.empty:
        return DASH
    base = default[f"{modality}_paper_top1"].iloc[0]
    others = [
        f"{r.value} {getattr(r, f'{modality}_paper_top1') - base:+.1f}"
        for r in rows.itertuples()
        if not getattr(r, f"{modality}_paper_default")
    ]
    return f"default {default['value'].iloc[0]}; " + ", ".join(others)


def view_interactions(results: Results, table: str, modality: str) -> str:
    """An interaction table: per component (named, with the Table 1 row that removes it) the
    entry's top-1 and the effects alone, in the path and their difference."""
    inter = results.frame(f"{table}_interactions")
    entries = results.frame(table).set_index("entry")
    inter = inter[inter["modality"] == modality]
    lines = []
    for (comp, entry), g in inter.groupby(["component", "entry"], sort=False):
        by = g.set_index("measure")
        why = by.at["alone", "why"] if isinstance(by.at["alone", "why"], str) else ""
        top1 = mean_std(
            entries.at[entry, f"{modality}_top1"],
            entries.at[entry, f"{modality}_top1_std"],
            entries.at[entry, f"{modality}_seeds"],
        )
        same = all(by.at["difference", k] == 0 for k in ("diff", "low", "high"))
        lines.append(
            [
                f"{COMPONENTS.get(comp, comp)} ({comp})",
                f"{entry}: {why}" if why else f"{entry} {top1}",
                DASH if why else effect(by.loc["alone"].to_dict()),
                effect(by.loc["path"].to_dict(), bold=False),
                DASH if why else ("0 (the same runs)" if same else effect(by.loc["difference"].to_dict())),
            ]
        )
    path = (
        "Table 1's path"
        if load_table(table).get("interaction", {}).get("path", "table1") == "table1"
        else ("Fig. 8's path")
    )
    head = [
        "component (row that removes it)",
        "entry, top-1",
        "effect alone",
        f"effect in {path}",
        "alone - path",
    ]
    return "\n" + markdown(head, lines)


def effect(rec: dict, bold: bool = True) -> str:
    """An effect with its interval; bold when distinguishable (the alone and difference columns)."""
    if rec.get("seeds", 0) == 0 or math.isnan(rec["diff"]):
        return DASH
    rec = verdicts(rec)
    text = interval_text(rec)
    survives = not text.endswith("n.d.") and rec.get("adjusted") is not False
    return f"**{text}**" if survives and bold else text


def view_effect(results: Results, table: str, component: str, measure: str, modality: str) -> str:
    """One effect of an interaction table (alone, path or difference) with its interval and
    verdicts: '-17.2 [-24.4, -9.7] (Holm: n.d.)'."""
    df = results.frame(f"{table}_interactions")
    hit = df[(df["component"] == component) & (df["measure"] == measure) & (df["modality"] == modality)]
    if len(hit) != 1 or math.isnan(hit["diff"].iloc[0]):
        raise DocsError(
            f"{results.folder}/{table}_interactions.csv has no {component} {measure} ({modality})"
        )
    return effect(hit.iloc[0].to_dict(), bold=False)


def view_speed(results: Results, modality: str) -> str:
    """Table 1's speed column: each row's throughput over mvitv2's ([min-max over rounds] where the
    report timed them side by side), beside the paper's ratio."""
    t1 = results.frame("table1")
    unit = UNITS[modality]
    lines = []
    for r in t1.to_dict("records"):
        ratio, low, high = (r[f"{modality}_speedup{k}"] for k in ("", "_low", "_high"))
        cell = DASH if math.isnan(ratio) else f"{ratio:.2f}x"
        if not math.isnan(low) and not math.isnan(high) and low != high:
            cell += f" [{low:.2f}-{high:.2f}]"
        if r["row"] == list_rows()[0] and not math.isnan(r[f"{modality}_speed"]):
            cell += f" ({r[f'{modality}_speed']:.0f} {unit})"
        paper = r[f"{modality}_paper_speedup"]
        lines.append([r["row"], cell, DASH if math.isnan(paper) else f"{paper:.2f}x"])
    return "\n" + markdown(["row", f"{unit} x mvitv2 (ours)", "paper x mvitv2 (Hiera-L, A100 fp16)"], lines)


def view_top1(results: Results, table: str, entry: str, modality: str, mode: str, seed: str = "") -> str:
    """One run's top-1 (`seed`), or the mean over the entry's runs: '42.8'."""
    runs = (
        results.runs(table, entry, modality, mode) if table != "fig8" else results.supervised(entry, modality)
    )
    if seed:
        runs = runs[runs["seed"] == int(seed)]
    if runs.empty:
        raise DocsError(f"{results.folder}/runs.csv has no run {table}/{entry}/{modality}/{mode} {seed}")
    return num(runs["top1"].mean())


def view_seeds(results: Results, table: str, entry: str, modality: str, mode: str) -> str:
    """The entry's seeds' top-1 in seed order: '42.8 / 45.2 / 47.8'."""
    runs = (
        results.runs(table, entry, modality, mode) if table != "fig8" else results.supervised(entry, modality)
    )
    if runs.empty:
        raise DocsError(f"{results.folder}/runs.csv has no run {table}/{entry}/{modality}/{mode}")
    return seed_list(runs, " / ")


def view_row(results: Results, row: str, modality: str, mode: str) -> str:
    """A Table 1 (MAE) or Fig. 8 (supervised) row's mean ± std over seeds: '45.3 ± 2.5'."""
    if mode == "mae":
        t1 = results.frame("table1").set_index("row")
        return mean_std(*(t1.at[row, f"{modality}_{k}"] for k in ("top1", "top1_std", "seeds")))
    f8 = results.frame("fig8").set_index("row")
    return mean_std(*(f8.at[row, f"{modality}_supervised_{k}"] for k in ("top1", "std", "seeds")))


def view_std(results: Results, table: str, row: str, modality: str, mode: str) -> str:
    """The std over seeds of a Table 1 (MAE) or Fig. 8 (supervised) row: '5.6'."""
    if mode == "mae":
        return num(results.frame(table).set_index("row").at[row, f"{modality}_top1_std"])
    return num(results.frame("fig8").set_index("row").at[row, f"{modality}_supervised_std"])


def view_diff(results: Results, family: str, label: str, modality: str) -> str:
    """One comparison of <family>_differences.csv: '+16.3 [+5.8, +25.9]'; label with '_' for ' '."""
    return comparison(results, family, label.replace("_", " "), modality)


def trend_lines(results: Results, modality: str, **where: str) -> pd.DataFrame:
    df = results.frame("trends")
    pick = df["modality"] == modality
    for key, value in where.items():
        pick &= df[key].astype(str) == value
    if not pick.any():
        said = " ".join(f"{k}={v}" for k, v in where.items())
        raise DocsError(f"{results.folder}/trends.csv has no {modality} line with {said}")
    return df[pick]


def view_trend(results: Results, modality: str, label: str) -> str:
    """One comparison of the paper's trends (trends.csv), with its Holm verdict over the trends'
    family: '+27.2 [+20.8, +33.2] (Holm: yes)'; label with '_' for ' ' (MAE_f_-_MAE_a)."""
    rec = trend_lines(results, modality, comparison=label.replace("_", " ")).iloc[0].to_dict()
    if math.isnan(rec["diff"]):
        return DASH
    return interval_text(verdicts(rec))


def view_trend_verdict(results: Results, modality: str, number: str) -> str:
    """Trend (number)'s verdict in trends.csv: 'holds', 'does not hold', 'not known yet', ..."""
    return str(trend_lines(results, modality, trend=number)["verdict"].iloc[0])


def view_csv(results: Results, name: str) -> str:
    """A measurement file (analysis/figures/<preset>/<name>.csv, written by the script its '#'
    header names) as a Markdown table, its columns in file order and its values as written (a
    blank is –): for tables that are not a report's (feature probes, recipe searches, benchmarks)."""
    df = results.frame(name, as_written=True)
    cells = [[v if v != "" else DASH for v in r] for r in df.itertuples(index=False)]
    return "\n" + markdown([str(c) for c in df.columns], cells)


def matching(results: Results, name: str, where: list[str]) -> pd.DataFrame:
    """The lines of a measurement file (values as written) that meet every condition: key=value
    or key!=value ('_' in a value stands for ' ' only when the file has no such value with '_')."""
    df = results.frame(name, as_written=True)
    pick = pd.Series(True, index=df.index)
    for cond in where:
        key, op, value = cond.partition("!=") if "!=" in cond else cond.partition("=")
        if key not in df.columns:
            raise DocsError(
                f"{results.folder}/{name}.csv has no column {key!r}. Valid: {', '.join(df.columns)}"
            )
        col = df[key]
        same = (col == value) if (col == value).any() else (col == value.replace("_", " "))
        pick &= ~same if op == "!=" else same
    return df[pick]


def view_cell(results: Results, name: str, *where_and_column: str) -> str:
    """One value of a measurement file, as written: `cell video_search point=hog_b probe` is the
    `probe` column of the line whose `point` is hog_b (conditions as in matching())."""
    *where, column = where_and_column
    hit = matching(results, name, where)
    if column not in hit.columns:  # '_' for ' ' in a column name too
        column = column.replace("_", " ")
    if len(hit) != 1:
        raise DocsError(f"{results.folder}/{name}.csv: {len(hit)} lines match {' '.join(where)} (need 1)")
    return hit[column].iloc[0] or DASH


def view_range(results: Results, name: str, column: str, *where: str) -> str:
    """The smallest and largest value of a column over the lines that meet `where`, as written:
    '0.71-1.08x' (a unit both share is written once)."""
    values = [v for v in matching(results, name, list(where))[column] if v]
    if not values:
        raise DocsError(f"{results.folder}/{name}.csv: no {column} in the lines matching {' '.join(where)}")
    number = lambda v: float(v.rstrip("x% s"))  # noqa: E731
    low, high = min(values, key=number), max(values, key=number)
    if (
        all(v.replace(".", "", 1).lstrip("-").isdigit() for v in (low, high))
        and len(high.partition(".")[2]) > 2
    ):
        low, high = f"{float(low):.1f}", f"{float(high):.1f}"  # a report's 4-decimal column
    if number(low) == number(high):
        return high
    unit = high[len(high.rstrip("x% s")) :]
    if unit and low.endswith(unit):
        low = low[: -len(unit)]
    return f"{low}-{high}"


def view_times(results: Results, table: str, modality: str, mode: str = "") -> str:
    """Wall time per run of a table's runs (runs.csv's wall_time_s, resumes included):
    '152-198 s (median 176 s, 51 runs)'; mode narrows to mae or supervised runs."""
    df = results.frame("runs")
    if "wall_time_s" not in df.columns:
        raise DocsError(f"{results.folder}/runs.csv has no wall_time_s: publish a current report")
    pick = (df["modality"] == modality) & (df["table"] == table)
    if mode:
        pick &= df["mode"] == mode
    t = pd.to_numeric(df.loc[pick, "wall_time_s"], errors="coerce").dropna()
    if t.empty:
        raise DocsError(f"{results.folder}/runs.csv has no timed {table} {modality} {mode} run")
    if len(t) == 1:
        return f"{t.iloc[0]:.0f} s (1 run)"
    return f"{t.min():.0f}-{t.max():.0f} s (median {t.median():.0f} s, {len(t)} runs)"


def view_verdict(results: Results, family: str, label: str, modality: str) -> str:
    """One comparison's verdict in words, for prose: 'distinguishable after Holm (family of 6)',
    'distinguishable alone, not after Holm (family of 6)' or 'not distinguishable'."""
    df = results.frame(f"{family}_differences")
    hit = df[(df["comparison"] == label.replace("_", " ")) & (df["modality"] == modality)]
    if hit.empty or math.isnan(hit["diff"].iloc[0]):
        raise DocsError(f"{results.folder}/{family}_differences.csv has no {label!r} ({modality})")
    rec = verdicts(hit.iloc[0].to_dict())
    if not rec["distinguishable"]:
        return "not distinguishable"
    if rec.get("adjusted") is None:
        return "distinguishable (no family adjustment in this file)"
    m = count(rec.get("family"))
    return ("distinguishable after Holm" if rec["adjusted"] else "distinguishable alone, not after Holm") + (
        f" (family of {m})"
    )


def view_resolution(results: Results, family: str, modality: str) -> str:
    """What a family's seeds resolve (<family>_differences.csv of a report with Holm columns):
    per comparison the raw interval, the Holm verdict, the MDE, the seeds for the target effect
    and the interval's sample and seed parts, as the report prints it."""
    df = results.frame(f"{family}_differences")
    if "adjusted" not in df.columns:
        raise DocsError(
            f"{results.folder}/{family}_differences.csv has no Holm columns: publish a current report"
        )
    df = df[df["modality"] == modality].copy()
    df["distinguishable"] = [bool(flag(v)) for v in df["distinguishable"]]
    df["adjusted"] = [bool(flag(v)) for v in df["adjusted"]]
    return resolution_markdown(df).replace(RESOLUTION_NOTE, "")


def view_chance(results: Results, modality: str) -> str:
    """Per Table 1 row, MAE and supervised top-1 with the 95% interval over the val samples
    (chance.csv), and whether it lies above chance: '21.7 [19.2, 24.3] above'."""
    df = results.frame("chance")
    df = df[df["modality"] == modality]
    if df.empty:
        raise DocsError(f"{results.folder}/chance.csv has no {modality} lines")

    def cell(mode: str, row: str) -> str:
        line = df[(df["mode"] == mode) & (df["row"] == row)]
        if line.empty:
            return DASH
        r = line.iloc[0]
        where = "**above**" if flag(r["above_chance"]) else "at chance"
        return f"{num(r['top1'])} [{num(r['low'])}, {num(r['high'])}] {where}"

    chance = num(df["chance"].iloc[0])
    header = ["row", f"MAE top-1 [95% CI], chance {chance}%", f"supervised top-1 [95% CI], chance {chance}%"]
    rows = [[row, cell("mae", row), cell("supervised", row)] for row in list_rows()]
    return "\n" + markdown(header, rows)


VIEWS = {
    "summary": view_summary,
    "table3": view_table3,
    "interactions": view_interactions,
    "top1": view_top1,
    "seeds": view_seeds,
    "row": view_row,
    "speed": view_speed,
    "std": view_std,
    "diff": view_diff,
    "effect": view_effect,
    "times": view_times,
    "verdict": view_verdict,
    "resolution": view_resolution,
    "trend": view_trend,
    "trendverdict": view_trend_verdict,
    "chance": view_chance,
    "csv": view_csv,
    "cell": view_cell,
    "range": view_range,
}
