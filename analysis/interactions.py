"""Interaction tables (loo, one): per component, its effect alone, its effect in the cumulative
Table 1 path, and the difference (the interaction), each with a paired 95% interval.

The effect of a component is accuracy with it minus without it (positive: it helps):
- alone, change put_back (loo):  (reference + component) - reference          (f+conv - f)
- alone, change remove (one):    reference - (reference - component)          (mvitv2 - mvitv2-conv)
- in the path (table1 / fig8):   the row before its removal - the row after it (a - b for conv)
- difference: alone - in the path, one paired contrast of the four runs (analysis/stats.py);
  an interval containing 0 means the component's effect does not depend on what else is there,
  as far as this scale can tell.
Every comparison of the table in one modality (each component's three measures) is one family:
its verdicts are Holm-adjusted over the family (analysis.differences.family), and each says what
it resolves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.study.config import MODALITIES, list_rows
from ablations.study.table_rows import table_entries
from analysis.differences import builds_of, correct_by_seed, family, interval_text, resolution_markdown
from analysis.entries import entry_runs, why_missing
from analysis.stats import paired_contrast
from analysis.tables import markdown

COLUMNS = [
    "component",
    "entry",
    "modality",
    "measure",
    "diff",
    "low",
    "high",
    "seeds",
    "distinguishable",
    "p",
    "se_sample",
    "se_seed",
    "builds",
    "why",
    "runs",  # the entry's own finished runs
]
MEASURES = ("alone", "path", "difference")
# Each component by name, keyed by the Table 1 row that removes it (models/rows.yaml): tables name
# components by that row (`component: b`); figures and docs say what it is.
COMPONENTS = {"a": "relative positions", "b": "conv pooling", "c": "stride-1 pools",
              "d": "overlapping kernels", "e": "attention residual", "f": "KV pooling"}  # fmt: skip
PATH_LABEL = {"table1": "Table 1 path (MAE)", "fig8": "Fig. 8 path (supervised)"}


def contrast(runs_dir: Path, terms: list[tuple[int, pd.DataFrame]]) -> dict:
    """{diff, low, high, seeds, distinguishable} of sum(weight x correct) over the seeds every run
    has predictions for (NaN where one has none, or they were validated on other samples)."""
    per = [correct_by_seed(runs_dir, runs) for _, runs in terms]
    seeds = sorted(set.intersection(*(set(p) for p in per))) if per else []
    rec = {"diff": math.nan, "low": math.nan, "high": math.nan, "seeds": len(seeds), "distinguishable": False,
           "p": math.nan, "se_sample": math.nan, "se_seed": math.nan,
           "builds": builds_of([r for _, r in terms])}  # fmt: skip
    if not seeds:
        return rec
    labels = [p[s][1] for p in per for s in seeds]
    if any(lab.shape != labels[0].shape or (lab != labels[0]).any() for lab in labels):
        return rec
    arrays = [(w, np.stack([p[s][0] for s in seeds])) for (w, _), p in zip(terms, per)]
    d = paired_contrast(arrays)
    return rec | {"diff": d.diff, "low": d.low, "high": d.high, "distinguishable": d.distinguishable,
                  "p": d.p, "se_sample": d.se_sample, "se_seed": d.se_seed}  # fmt: skip


def path_entry(row: str, path: str) -> dict:
    mode = "supervised" if path == "fig8" or row == list_rows()[0] else "mae"
    return {"mode": mode, "step": row, "model": {}, "set": {}, "scale": {}}


def interactions(df: pd.DataFrame, runs_dir: Path, variant: str, table: str, spec: dict,
                 resolve: float | None = None) -> pd.DataFrame:  # fmt: skip
    """One record of COLUMNS per component, modality and measure, with analysis.differences'
    FAMILY_COLUMNS (one family per modality; resolve: the target effect in points, or none)."""
    inter, rows, recs = spec["interaction"], list_rows(), []
    sign = 1 if inter.get("change", "put_back") == "put_back" else -1
    path = inter.get("path", "table1")
    for m in MODALITIES:
        entries = dict(table_entries(spec, m, table))
        ref = entries.get(inter["reference"])
        if ref is None:
            continue
        ref_runs = entry_runs(df, table, inter["reference"], ref, m, variant)
        for name, e in entries.items():
            comp = e.get("component")
            if not comp:
                continue
            prev = rows[rows.index(comp) - 1]
            runs = entry_runs(df, table, name, e, m, variant)
            before = entry_runs(df, path, prev, path_entry(prev, path), m, variant)
            after = entry_runs(df, path, comp, path_entry(comp, path), m, variant)
            alone = [(sign, runs), (-sign, ref_runs)]
            in_path = [(1, before), (-1, after)]
            why = why_missing(df, table, name, e, m, variant) if runs.empty else ""
            for measure, terms in zip(MEASURES, (alone, in_path, alone + [(-w, r) for w, r in in_path])):
                rec = contrast(runs_dir, terms) if not (why and measure != "path") else contrast(runs_dir, [])
                recs.append(
                    {
                        "component": comp,
                        "entry": name,
                        "modality": m,
                        "measure": measure,
                        **rec,
                        "why": why,
                        "runs": len(runs),
                    }
                )
    frame = pd.DataFrame(recs, columns=COLUMNS)
    return family(frame, None if resolve is None else [resolve] * len(frame))


def interactions_markdown(frame: pd.DataFrame, spec: dict) -> str:
    """One line per component and modality: alone, in the path, difference (each Δ [95% CI])."""
    path = PATH_LABEL.get(spec["interaction"].get("path", "table1"), "path")
    lines = []
    trained = set(frame.loc[frame["runs"] > 0, "modality"])  # a modality without runs is left out
    for (comp, entry, m), g in frame.groupby(["component", "entry", "modality"], sort=False):
        if m not in trained:
            continue
        by = g.set_index("measure")
        why = by["why"].iloc[0]
        alone = why if why else _cell(by.loc["alone"])
        diff = "–" if why else _cell(by.loc["difference"])
        lines.append([comp, entry, m, alone, _cell(by.loc["path"]), diff, str(int(by.loc["path", "seeds"]))])
    head = ["component (Table 1 row)", "entry", "modality", "effect alone [95% CI]", f"effect in the {path}",
            "alone - path [95% CI]", "seeds (path)"]  # fmt: skip
    named = frame[frame["modality"].isin(trained)].assign(
        comparison=lambda f: f["component"] + ": " + f["measure"]
    )
    return markdown(head, lines) + (resolution_markdown(named) if "adjusted" in frame.columns else "")


def _cell(rec) -> str:
    if rec["seeds"] == 0 or math.isnan(rec["diff"]):
        return "–"
    return interval_text(rec)


NOTE = (
    "Effect = top-1 with the component minus without it, in points (positive: it helps). Alone: "
    "changed by itself on the reference model; path: Table 1's cumulative step that removes it "
    "(every earlier component already gone); alone - path: the interaction, one paired contrast of "
    "the four runs (analysis/stats.py). **n.d.** = the interval contains 0. – = a run is missing "
    "(train it with the same preset and --set). Method: analysis/interactions.py.\n"
)
