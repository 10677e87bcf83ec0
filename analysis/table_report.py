"""The report of the tables that are not the paper's (loo, one, user files), per variant:
<name>.md/.csv (every entry), and for interaction tables <name>_interactions.md/.csv/.png."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.errors import ConfigError
from ablations.store.atomic import write_atomic, write_csv_atomic
from ablations.study.definitions import definitions
from analysis import interaction_plot, interactions, provenance
from analysis.collect import say_failed
from analysis.entries import entries_table, has_runs


def write_tables(
    df: pd.DataFrame, runs_dir: Path, vdir: Path, variant: str, resolve: float | None = None
) -> list[str]:
    """Writes the files of every such table with runs of its own in this variant; index lines
    (resolve: the target effect of the interactions' "seeds needed", in points)."""
    lines = []
    for name, spec in definitions(runs_dir).items():
        if not has_runs(df, name, variant):
            continue
        try:
            frame, md = entries_table(df, runs_dir, variant, name, spec)
        except ConfigError as e:  # a kept definition the schema no longer accepts: said, never fatal
            print(f"[report] {name}: its definition runs/{name}/table.yaml is not valid now ({e}); skipped")
            continue
        title = spec.get("title", name)
        builds = provenance.builds_markdown(provenance.table_runs(df, name, variant))
        write_atomic(vdir / f"{name}.md", f"# {title}\n\nRuns: `{variant}`.\n\n{md}{builds}")
        write_csv_atomic(frame, vdir / f"{name}.csv")
        lines.append(f"- [{name}]({variant}/{name}.md): {title}")
        if spec.get("interaction"):
            inter = interactions.interactions(df, runs_dir, variant, name, spec, resolve)
            md = interactions.NOTE + "\n" + interactions.interactions_markdown(inter, spec)
            write_atomic(
                vdir / f"{name}_interactions.md", f"# {title}: interactions\n\nRuns: `{variant}`.\n\n{md}"
            )
            write_csv_atomic(inter, vdir / f"{name}_interactions.csv")
            interaction_plot.interactions(inter, vdir, f"{name}_interactions", f"{title} ({variant})")
            lines.append(f"- [{name}: alone vs in the path]({variant}/{name}_interactions.md)")
    return lines


def damaged_definitions(runs_dir: Path) -> list[str]:
    """Each user table whose kept definition (runs/<name>/table.yaml) does not read: said in one
    line with the fix, and counted as a part of the report that failed; index.md lines."""
    damaged = []
    definitions(runs_dir, damaged)
    for name, why, fix in damaged:
        say_failed(f"table {name}: {why}", f"this table is left out of the report; {fix}")
    rows = [f"| `{name}` | damaged: {why}; {fix} |" for name, why, fix in damaged]
    return ["## Damaged tables (left out)", "", "| table | state |", "|---|---|", *rows, ""] if rows else []
