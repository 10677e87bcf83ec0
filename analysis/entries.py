"""The tables that are not the paper's (loo, one, user files): each entry's runs and a plain table.

An entry's runs are its own folder's, or, for an entry equal to a Table 1 / Fig. 8 row (its
config is that row's, so config.resolve gave it the row's folder), the row's.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd

from ablations.errors import ConfigError
from ablations.study.config import MODALITIES, check_config, deep_update, entry_changes
from ablations.study.table_rows import table_entries
from analysis.differences import compare, interval_text
from analysis.tables import fmt, modality_markdown, select, stat
from models import load_rows, rows_first


def owner(entry: dict) -> tuple[str, str] | None:
    """The Table 1 / Fig. 8 (table, row) an entry shares its folder with, if any."""
    if entry["model"] or entry["set"] or entry["scale"]:
        return None
    if entry["mode"] == "mae" or entry["step"] == rows_first():
        return "table1", entry["step"]
    return "fig8", entry["step"]


def entry_runs(df: pd.DataFrame, table: str, name: str, entry: dict, m: str, variant: str) -> pd.DataFrame:
    runs = select(df, table, name, m, variant)
    if runs.empty and (shared := owner(entry)):
        runs = select(df, *shared, m, variant)
    return runs


def refusal(base_cfg: dict, entry: dict, name: str) -> str | None:
    """Why validation refuses the entry, rebuilt on a finished run's config of the same variant
    (its --set values and preset), or None if it would be accepted."""
    cfg = copy.deepcopy(base_cfg)
    cfg["mode"], cfg["model"]["step"] = entry["mode"], entry["step"]
    flags = {k for row in load_rows().values() for k in row}  # the base run's own row flags go
    kept = {k: v for k, v in (cfg["model"].get("overrides") or {}).items() if k not in flags}
    cfg["model"]["overrides"] = {**kept, **entry["model"]}
    try:
        deep_update(cfg, entry_changes(entry, cfg))
        check_config(cfg, name)
    except ConfigError as e:
        return str(e)
    return None


def why_missing(df: pd.DataFrame, table: str, name: str, entry: dict, m: str, variant: str) -> str:
    """'refused: <why>' when validation refuses the entry (checked on a run of the variant),
    else 'not trained yet'."""
    plain = df[(df["variant"] == variant) & (df["modality"] == m)]
    if not plain.empty:
        reason = refusal(plain["config"].iloc[0], entry, f"{table}/{name}")
        if reason:
            return "refused: " + reason.split(": ", 1)[-1]
    return "not trained yet"


def table_modalities(spec: dict, table: str) -> tuple[str, ...]:
    """The modalities a table has entries for (an image-only table: image)."""
    return tuple(m for m in MODALITIES if table_entries(spec, m, table))


def entries_table(
    df: pd.DataFrame,
    runs_dir: Path,
    variant: str,
    table: str,
    spec: dict,
    modalities: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Per entry: mode, row + flags, top-1 (mean ± std over seeds) and the difference to the
    table's first entry with its paired 95% interval, per modality. The Markdown has columns for
    `modalities` only (default: those the table has entries for); the DataFrame has every one's."""
    recs, md = [], []
    per_mod = {m: table_entries(spec, m, table) for m in MODALITIES}
    names = list(dict.fromkeys(n for m in MODALITIES for n, _ in per_mod[m]))
    for name in names:
        cells, rec = [name, "", ""], {"entry": name}
        for m in MODALITIES:
            entries = dict(per_mod[m])
            if name not in entries:
                cells += ["n/a", ""]
                continue
            e = entries[name]
            cells[1:3] = [e["mode"], e["step"] + "".join(f" {k}={v}" for k, v in e["model"].items())]
            runs = entry_runs(df, table, name, e, m, variant)
            first_name, first = per_mod[m][0]
            acc, sd, n = stat(runs, "top1")
            rec |= {f"{m}_top1": acc, f"{m}_top1_std": sd, f"{m}_seeds": n}
            if runs.empty:
                cells += [why_missing(df, table, name, e, m, variant), ""]
                continue
            diff = (
                ""
                if name == first_name
                else interval_text(
                    compare(runs_dir, entry_runs(df, table, first_name, first, m, variant), runs, name, m)
                )
            )
            cells += [fmt(acc, sd, n), diff]  # fmt: skip
        recs.append(rec)
        md.append(cells)
    first = names[0] if names else "first"
    head = ["entry", "mode", "row + flags"] + [
        h for m in MODALITIES for h in (f"{m} top-1", f"Δ vs {first} [95% CI]")
    ]
    shown = table_modalities(spec, table) if modalities is None else modalities
    return pd.DataFrame(recs), modality_markdown(head, md, 3, shown)


def has_runs(df: pd.DataFrame, table: str, variant: str) -> bool:
    """The variant has a finished run in this table's own folders (not only shared Table 1 rows)."""
    return not df[(df["table"] == table) & (df["variant"] == variant)].empty
