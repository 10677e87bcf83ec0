"""<run>/failed.json: why the run's last attempt failed, and of which kind (ablations/errors.py).

Written (atomically, best effort: a full disk cannot hold the record either) when a run fails,
removed when it finishes; `--status` shows it, so a failed run says whether rerunning helps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ablations.store.atomic import write_json_atomic

FILE = "failed.json"


def record(folder: Path, kind: str, message: str) -> None:
    """Keep the failure beside the run (only in an existing folder; never raises)."""
    try:
        if Path(folder).is_dir():
            entry = {"kind": kind, "message": message, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_json_atomic(entry, Path(folder) / FILE)
    except OSError:
        pass


def clear(folder: Path) -> None:
    try:
        (Path(folder) / FILE).unlink(missing_ok=True)
    except OSError:
        pass


def read(folder: Path) -> dict | None:
    """The recorded failure, or None (also for an unreadable record)."""
    try:
        entry = json.loads((Path(folder) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "kind" in entry else None
