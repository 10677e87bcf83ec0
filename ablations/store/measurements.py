"""Measurement files: a CSV whose first line names the command that wrote it and the date, so a
page can show the table (analysis/doc_views.py: csv, cell, range) and a reader can remake it.
The benchmark scripts, the recipe and probe searches and the plan table all write through here."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from ablations.store.atomic import write_atomic


def measurement_csv(command: str, columns: list[str], lines: list[list], note: str = "") -> str:
    """'# written by: <command> (<date>); <note>', the header, then one line per measurement."""
    out = io.StringIO()
    out.write(f"# written by: {command} ({time.strftime('%Y-%m-%d')}){f'; {note}' if note else ''}\n")
    csv.writer(out, lineterminator="\n").writerows([columns, *lines])
    return out.getvalue()


def write_measurements(path, command: str, columns: list[str], lines: list[list], note: str = "",
                       append: bool = False) -> None:  # fmt: skip
    """Writes `path` atomically. append=True keeps an existing file's lines (and its first
    command line) and adds these, for measurements that accumulate (one per machine or load)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(lines)
        old = path.read_text()
        write_atomic(path, old + ("" if old.endswith("\n") else "\n") + out.getvalue())
        return
    write_atomic(path, measurement_csv(command, columns, lines, note))
