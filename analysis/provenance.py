"""Which builds made a table: the report lists them per table (git commit, dirty tree, torch /
timm / Python versions) and marks a table, or a comparison, whose runs mix builds or come from a
tree with uncommitted changes (ablations/study/provenance.py records them per run)."""

from __future__ import annotations

import pandas as pd

from ablations.study.provenance import build_flags

# The runs each paper table reads (Fig. 8 pairs with Table 1's MAE runs; Table 3's default is row f).
SOURCES = {"table1": ("table1",), "fig8": ("fig8", "table1"), "table3": ("table3", "table1")}


def table_runs(df: pd.DataFrame, name: str, variant: str) -> pd.DataFrame:
    """The runs a report table of this variant reads (a table file: its own and Table 1 / Fig. 8's
    path rows)."""
    tables = SOURCES.get(name, (name, "table1", "fig8"))
    return df[(df["variant"] == variant) & df["table"].isin(tables)]


def mark(labels) -> str:
    """'' (one clean build), or what a reader must know: 'mixed builds', 'dirty tree', ..."""
    return build_flags(labels)


def builds_markdown(runs: pd.DataFrame) -> str:
    """'## Builds' with one line per build (runs, versions) and the table's mark."""
    if runs.empty or "build" not in runs.columns:
        return ""
    lines = []
    for build, g in runs.groupby("build", sort=True):
        versions = sorted({f"torch {r.torch}, timm {r.timm}, Python {r.python}" for r in g.itertuples()})
        lines.append(f"- `{build}`: {len(g)} run{'s' * (len(g) != 1)} ({'; '.join(versions)})")
    flag = mark(runs["build"])
    head = "\n## Builds\n\n" + (
        f"**{flag}**: rows may differ by code, not only by the change they test; retrain with one "
        "committed build (--force) to compare like with like.\n\n"
        if flag
        else "One committed build made every run of this table.\n\n"
    )
    return head + "\n".join(lines) + "\n"
