"""A sweep (--set key=a,b,c) as one table and one plot against the swept key: per table entry and
modality, top-1 at each value and its difference to the baseline with a paired 95% interval.

The baseline is the point the user named: the preset's own value of each swept key when the list
has it (sweeping across the default), else the first value given. Every finished point counts,
whoever trained it (a point equal to the preset's default is often the plain run of the row:
analysis/collect.py reads the names each run folder was asked for by).

Written to runs/report/sweeps/<sweep id>/sweep.{md,csv,png,pdf}; the id names the preset, the
swept keys and the other --set values (ablations/study/config.sweep_id)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.store.atomic import write_atomic, write_csv_atomic
from analysis.differences import compare, family, interval_text, resolution_markdown
from analysis.plots import MODS, OURS, PAPER, plt, save, with_results
from analysis.tables import fmt, markdown, stat


def sweep_frame(df: pd.DataFrame, runs_dir: Path, sweep: str, resolve: float | None = None) -> pd.DataFrame:
    """One record per (table/entry, modality, swept values), in value order."""
    return sweep_tables(df, runs_dir, sweep, resolve)[0]


def sweep_tables(df: pd.DataFrame, runs_dir: Path, sweep: str, resolve: float | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """(sweep_frame, its differences as families): each entry's differences to its baseline value
    (the named one: `baseline`) in one modality are a family (Holm; analysis.differences.family),
    labelled "<entry>: <value>"."""
    runs = df[df["sweep_id"] == sweep]
    keys = list(runs["sweep_values"].iloc[0])
    named = baseline(runs, keys)
    recs, diffs = [], []
    for (table, entry, m), group in runs.groupby(["table", "entry", "modality"], sort=False):
        # a swept value may be a list or mapping ([32,32]): grouped by its JSON text
        key = group["sweep_values"].map(lambda v: json.dumps([v[k] for k in keys], sort_keys=True))
        points = sorted(set(key), key=lambda text: _order(json.loads(text)))
        base = named if named in points else points[0]  # the named one is not finished yet: the first
        for p in points:
            acc, sd, n = stat(group[key == p], "top1")
            d = compare(runs_dir, group[key == base], group[key == p], p, m) if p != base else None
            rec = {"entry": f"{table}/{entry}", "modality": m, **dict(zip(keys, json.loads(p)))}
            rec |= {"top1": acc, "top1_std": sd, "seeds": n}
            recs.append(rec | ({k: d[k] for k in ("diff", "low", "high")} if d else {}))
            if d:
                diffs.append((len(recs) - 1, d | {"entry": rec["entry"]}))
    frame = pd.DataFrame(recs)
    fam = family(pd.DataFrame([d for _, d in diffs]), None if resolve is None else [resolve] * len(diffs),
                 by=["entry", "modality"]) if diffs else pd.DataFrame()  # fmt: skip
    frame["delta"] = "(baseline)"
    for j, (i, _) in enumerate(diffs):
        frame.loc[i, "delta"] = interval_text(fam.iloc[j])
    if len(fam):
        fam["comparison"] = fam["entry"] + ": " + fam["comparison"]
    return frame, fam


def baseline(runs: pd.DataFrame, keys: list[str]) -> str | None:
    """The JSON text of the sweep's baseline point (its runs record it: ablations/study/config.py),
    None for runs from before the baseline was recorded (their first point is the baseline)."""
    named = [json.dumps([b[k] for k in keys], sort_keys=True) for b in runs["sweep_baseline"]
             if isinstance(b, dict) and set(keys) <= set(b)]  # fmt: skip
    # a sweep extended later (one more value) may name another baseline: most of its points' wins
    return Counter(named).most_common(1)[0][0] if named else None


def _order(point: list):
    """Numbers in numeric order, anything else after them in text order."""
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in point)


def sweep_markdown(frame: pd.DataFrame, keys: list[str]) -> str:
    rows = [[r["entry"], r["modality"], *(str(r[k]) for k in keys), fmt(r["top1"], r["top1_std"], r["seeds"]),
             r["delta"], str(r["seeds"])] for _, r in frame.iterrows()]  # fmt: skip
    head = ["entry", "modality", *keys, "top-1", "Δ vs the baseline [95% CI]", "seeds"]
    return markdown(head, rows)


def sweep_plot(frame: pd.DataFrame, keys: list[str], out: Path, title: str) -> list[Path]:
    """Per modality with runs: top-1 (mean ± std over seeds) against the swept value, one line per
    entry (top), and each value's difference to the baseline with its paired 95% interval (bottom); with
    several swept keys the x axis lists the combinations."""
    mods = with_results({m: (frame["modality"] == m).any() for m in MODS})
    fig, axes = plt.subplots(2, len(mods), figsize=(5 * len(mods), 6.4), sharex="col", squeeze=False)
    for (ax, dax), m in zip(axes.T, mods):
        part = frame[frame["modality"] == m]
        if part.empty:
            ax.text(0.5, 0.5, f"no {m} runs", ha="center", va="center", transform=ax.transAxes, color=PAPER)
        for entry, g in part.groupby("entry", sort=False):
            numeric = len(keys) == 1 and all(isinstance(v, (int, float)) for v in g[keys[0]])
            x = g[keys[0]].to_numpy(float) if numeric else np.arange(len(g))
            line = ax.errorbar(x, g["top1"], yerr=g["top1_std"].fillna(0), marker="o", capsize=3, label=entry)
            d = g.reindex(columns=["diff", "low", "high"]).astype(float).fillna({"diff": 0.0})
            err = np.stack([(d["diff"] - d["low"]).fillna(0), (d["high"] - d["diff"]).fillna(0)])
            dax.errorbar(x, d["diff"], yerr=err, marker="o", capsize=3, color=line[0].get_color())
            if not numeric:
                dax.set_xticks(x, [", ".join(str(r[k]) for k in keys) for _, r in g.iterrows()], fontsize=8)
        ax.set_ylabel("top-1 (%)", color=OURS)
        ax.set_title(m)
        dax.axhline(0.0, color="black", lw=0.8)
        dax.set_xlabel(", ".join(keys))
        dax.set_ylabel("Δ vs the baseline, 95% CI")
        if not part.empty:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, "sweep")


NOTE = (
    "One run per value (and seed); Δ = top-1 minus the baseline's (the preset's own value when swept, "
    "else the first value given), in points, paired bootstrap 95% "
    "interval over the validation samples, widened by the seed spread with several seeds "
    "(analysis/stats.py); **n.d.** = the interval contains 0; (Holm: yes / n.d.) = whether it survives "
    "the family (this entry's differences to its baseline in one modality).\n"
)


def write_sweeps(df: pd.DataFrame, runs_dir: Path, out: Path, resolve: float | None = None) -> list[str]:
    """Every sweep's table and plot under out/sweeps/<id>/; returns index.md lines."""
    lines = []
    for sweep in sorted(df["sweep_id"].dropna().unique()):
        keys = list(df[df["sweep_id"] == sweep]["sweep_values"].iloc[0])
        frame, fam = sweep_tables(df, runs_dir, sweep, resolve)
        folder = out / "sweeps" / sweep
        base = frame[frame["delta"] == "(baseline)"].head(1)
        said = ", ".join(f"{k}={base[k].iloc[0]}" for k in keys) if len(base) else "-"
        md = f"# Sweep {sweep}: {', '.join(keys)}\n\n{NOTE}\nBaseline: {said}.\n\n"
        md += sweep_markdown(frame, keys)
        md += resolution_markdown(fam) if len(fam) else ""
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "sweep.md", md)
        write_csv_atomic(frame, folder / "sweep.csv")
        sweep_plot(frame, keys, folder, f"Sweep over {', '.join(keys)} ({sweep})")
        lines.append(f"- sweep [{sweep}](sweeps/{sweep}/sweep.md): {', '.join(keys)}")
    return lines
