"""Accuracy differences with paired bootstrap 95% intervals (method: analysis/stats.py), from the
runs' per-sample validation predictions (<phase>/predictions.npz): each adjacent pair of Table 1
rows (later minus earlier), for Fig. 8 MAE minus supervised on the same row, and for Table 3
each entry minus its sub-table's default."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.store.predictions import DamagedPredictions, correct, load_predictions, predictions_path
from ablations.study.config import MODALITIES, list_rows
from analysis.collect import say_damaged
from analysis.stats import paired_difference
from analysis.tables import mae_runs, markdown, select, supervised_runs, table3_entries, table3_runs

COLUMNS = ["comparison", "modality", "diff", "low", "high", "seeds", "samples", "distinguishable"]


def correct_by_seed(runs_dir: Path, runs: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (correct@1 (N,) bool, labels (N,))} of the runs whose predictions file exists and
    reads; a damaged one is said once and left out (the other runs are still compared)."""
    out = {}
    for r in runs.itertuples():
        path = predictions_path(Path(runs_dir) / str(r.folder), str(r.mode))
        if path.exists():
            try:
                pred = load_predictions(path)
            except DamagedPredictions as e:
                say_damaged(str(e), f"this run is left out of the differences; redo it with --force on that "
                            f"run: the command that trained it with --only {r.name} --force")  # fmt: skip
                continue
            out[int(r.seed)] = (correct(pred, 1), pred["label"])
    return out


def compare(runs_dir: Path, a: pd.DataFrame, b: pd.DataFrame, label: str, modality: str) -> dict:
    """One record of COLUMNS: b minus a over the seeds both have predictions for (NaN if none)."""
    ca, cb = correct_by_seed(runs_dir, a), correct_by_seed(runs_dir, b)
    seeds = sorted(set(ca) & set(cb))
    rec = dict.fromkeys(COLUMNS, math.nan) | {"comparison": label, "modality": modality, "seeds": len(seeds)}
    labels = [ca[s][1] for s in seeds] + [cb[s][1] for s in seeds]
    if not seeds:
        return rec
    if any(lab.shape != labels[0].shape or (lab != labels[0]).any() for lab in labels):
        warnings.warn(
            f"{label} ({modality}): runs were validated on different samples; no interval", stacklevel=2
        )
        return rec
    d = paired_difference(np.stack([ca[s][0] for s in seeds]), np.stack([cb[s][0] for s in seeds]))
    rec |= {
        "diff": d.diff,
        "low": d.low,
        "high": d.high,
        "samples": d.n,
        "distinguishable": d.distinguishable,
    }
    return rec


def table1_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """Each Table 1 row minus the row before it, per modality."""
    rows = list_rows()
    recs = [
        compare(runs_dir, select(df, "table1", prev, m, variant), select(df, "table1", cur, m, variant),
                f"{cur} - {prev}", m)
        for prev, cur in zip(rows, rows[1:]) for m in MODALITIES
    ]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def fig8_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """MAE minus supervised from scratch, per row (row a on: mvitv2 has no MAE run) and modality."""
    recs = [
        compare(runs_dir, supervised_runs(df, row, m, variant), mae_runs(df, row, m, variant),
                f"{row}: MAE - supervised", m)
        for row in list_rows()[1:] for m in MODALITIES
    ]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def table3_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """Each Table 3 entry minus its sub-table's default, per modality the entry applies to. The
    default is the preset's own setting, whose runs are Table 1's row f: "<group>: <value> - <default>",
    "- row f" where no entry equals the preset's setting, "- default" (no numbers) while row f has
    no run (its config decides which entry is the default)."""
    by_group: dict[str, list] = {}
    for name, per_mod in table3_entries().items():
        by_group.setdefault(name.split("-", 1)[0], []).append((name, per_mod))
    recs = []
    for group, entries in by_group.items():
        for m in MODALITIES:
            f_runs = select(df, "table1", "f", m, variant)
            cells = [(name.split("-", 1)[1], *table3_runs(df, name, per_mod[m], m, variant))
                     for name, per_mod in entries if m in per_mod]  # fmt: skip
            ref = next(
                (value for value, _, is_default in cells if is_default), "row f" if len(f_runs) else "default"
            )
            recs += [compare(runs_dir, f_runs, runs, f"{group}: {value} - {ref}", m)
                     for value, runs, is_default in cells if not is_default]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def interval_text(rec) -> str:
    if math.isnan(rec["diff"]):
        return "–"
    text = f"{rec['diff']:+.1f} [{rec['low']:+.1f}, {rec['high']:+.1f}]"
    return text if rec["distinguishable"] else f"{text} n.d."


def differences_markdown(frame: pd.DataFrame) -> str:
    """One line per comparison, one column per modality; 'n.d.' = the interval contains 0."""
    md = []
    for label, group in frame.groupby("comparison", sort=False):
        by_mod = group.set_index("modality")
        cells = [label]
        for m in MODALITIES:
            if m not in by_mod.index:  # a Table 3 entry of the other modality only
                cells += ["n/a", "n/a"]
                continue
            rec = by_mod.loc[m]
            cells += [interval_text(rec), "–" if rec["seeds"] == 0 else str(int(rec["seeds"]))]
        md.append(cells)
    return markdown(["comparison", "image Δ top-1 [95% CI]", "seeds", "video Δ top-1 [95% CI]", "seeds"], md)


NOTE = (
    "Δ top-1 in percentage points with a paired bootstrap 95% interval over the validation samples "
    "(same samples for both runs), widened by the between-seed spread when both have several seeds "
    "(method: analysis/stats.py). **n.d.** = not distinguishable: the interval contains 0. With one "
    "seed the interval covers sample noise only, not training noise. – = a side has no finished run "
    "with predictions.npz (runs finished before it existed: retrain them with --force).\n"
)
TABLE3_NOTE = (
    "Default = the entry equal to the preset's own setting (its runs are Table 1's row f; marked * "
    "above); `- default` without a value: row f has no run yet, so which entry is the default is "
    "not known (python ablate.py --step f); `- row f`: no entry equals the preset's setting. n/a = "
    "no such comparison in this modality (the entry does not apply to it, or its default is another "
    "value).\n"
)
