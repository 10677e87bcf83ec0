"""Where a run lives: one folder per identity, found by every selection that asks for it.

A run is its resolved config (its identity, ablations/study/identity.py), not the name of the
selection that first trained it. The first folder that trains an identity stays its home; any
other name that resolves to the same identity (a sweep point equal to a preset default, a Table 3
entry equal to a swept row, another user table) is led there and trains nothing new.

    home(runs_dir, run)                 # the folder that holds the run (read only)
    settle(runs_dir, run, ident)        # the same, recorded: under the identity's lock

Two records, both rebuilt from the run folders themselves when missing:
- runs/.identities/<key>.json  {"home": "table1/f/image/tiny/seed0"}: a cache from identity to
  folder, written under runs/.identities/<key>.lock (held for milliseconds by whoever settles the
  identity, so two commands or two cluster jobs that ask for one identity at once pick one
  folder). An entry is trusted only while its folder still holds that identity; otherwise, and
  for folders from before the index (or copied in from another runs folder), the run folders'
  identity.json (else config.yaml) are read once per command.
- <home>/names.json  [{name, table, entry, variant, sweep, ..., identity: <key>}]: every selection
  name that asked for the run, so each table and sweep report finds it (analysis/collect.py).
  An entry counts only while its identity key matches the folder's identity.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from ablations.store.atomic import write_json_atomic
from ablations.store.lock import RunLocked, exclusive
from ablations.study.identity import run_identity

INDEX = ".identities"
NAMES = "names.json"
IDENTITY, CONFIG, METRICS = "identity.json", "config.yaml", "metrics.json"
# Top-level names of a runs folder that are not tables: its report, recipe searches, the index.
RESERVED = ("report", "sweeps", "search", INDEX, "README.md", "README")
RUN_GLOB = "*/*/*/*/seed*"  # <table>/<entry>/<modality>/<variant>/seed<k> (runs.run_dir)
# What a folder holds before anything trained there: its lock, cluster job logs, a failed attempt's
# record, and the names settle() wrote (runs.status calls such a folder "new").
SETUP = (".lock", "slurm", "failed.json", NAMES)
LOCK_WAIT_S = 60.0  # the index lock is held for milliseconds; a minute means something is wrong


def identity_key(config: dict) -> str:
    """The identity's config (run_identity(cfg)["config"]) as a short hash: its index file name."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read(path: Path, parse):
    try:
        value = parse(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return value if isinstance(value, (dict, list)) else None


def folder_key(folder: Path) -> str | None:
    """The identity key of what a folder trained: from identity.json, else from config.yaml
    (folders from before identity.json); None when neither says (new, or damaged)."""
    ident = _read(folder / IDENTITY, json.loads)
    if isinstance(ident, dict) and isinstance(ident.get("config"), dict):
        return identity_key(ident["config"])
    cfg = _read(folder / CONFIG, yaml.safe_load)
    try:
        return identity_key(run_identity(cfg)["config"])
    except (KeyError, TypeError, AttributeError):
        return None


def started(folder: Path) -> bool:
    """The folder holds more than a lock (and cluster job logs): a run began there."""
    return folder.is_dir() and any(p.name not in SETUP for p in folder.iterdir())


@functools.cache
def _scan(runs_dir: str) -> dict[str, list[str]]:
    """{identity key: [run folder names]} of every run folder under runs_dir, finished ones
    first. Read once per command (forget() at each start): new homes are found through the
    index, which every command writes before it trains."""
    root, found = Path(runs_dir), {}
    for folder in sorted(root.glob(RUN_GLOB)):
        if folder.relative_to(root).parts[0] in RESERVED or not folder.is_dir():
            continue
        key = folder_key(folder)
        if key:
            found.setdefault(key, []).append(folder.relative_to(root).as_posix())
    for names in found.values():
        names.sort(key=lambda n: not (root / n / METRICS).exists())  # stable: finished first
    return found


def forget() -> None:
    """Read the run folders afresh (each command starts with this)."""
    _scan.cache_clear()


def _entry(runs_dir: Path, key: str) -> str | None:
    entry = _read(Path(runs_dir) / INDEX / f"{key}.json", json.loads)
    home = entry.get("home") if isinstance(entry, dict) else None
    return home if isinstance(home, str) else None


def _holds(runs_dir: Path, name: str, key: str) -> bool:
    """name's folder holds this identity, or is being set up for it (nothing trained there yet)."""
    folder = Path(runs_dir) / name
    if not folder.is_dir():
        return False
    have = folder_key(folder)
    return have == key or (have is None and not started(folder))


def find(runs_dir: Path, name: str, key: str) -> str | None:
    """The home of an identity under runs_dir, or None: the index entry while its folder holds
    the identity, else the asked-for folder when it does, else any folder that does (finished
    first)."""
    home = _entry(runs_dir, key)
    if home and _holds(runs_dir, home, key):
        return home
    if folder_key(Path(runs_dir) / name) == key:
        return name
    for other in _scan(str(Path(runs_dir).resolve())).get(key, []):
        if folder_key(Path(runs_dir) / other) == key:
            return other
    return None


def home(runs_dir: Path, run) -> Path:
    """The folder of the run: its identity's home, or its own name when none has one (read only)."""
    key = identity_key(run_identity(run.config)["config"])
    return Path(runs_dir) / (find(runs_dir, run.name, key) or run.name)


def reuses(runs_dir: Path, run) -> str | None:
    """The folder (relative to runs_dir) where a run that another name trained lives, if any."""
    folder = home(runs_dir, run)
    return folder.relative_to(runs_dir).as_posix() if folder != Path(runs_dir) / run.name else None


@contextmanager
def index_lock(runs_dir: Path, key: str, wait_s: float = LOCK_WAIT_S):
    """The identity's index lock, waited for (it is held for milliseconds)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with exclusive(Path(runs_dir) / INDEX / f"{key}.lock", holder="another command settling it"):
                yield
            return
        except RunLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def settle(runs_dir: Path, run, ident: dict) -> Path:
    """The run's home (found, or its own name for a new identity), with the index entry and the
    run's name in <home>/names.json written: under the identity's index lock, so concurrent
    commands and cluster jobs asking for one identity settle on one folder."""
    key = identity_key(ident["config"])
    with index_lock(runs_dir, key):
        name = find(runs_dir, run.name, key) or run.name
        folder = Path(runs_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        if _entry(runs_dir, key) != name:
            write_json_atomic({"home": name}, Path(runs_dir) / INDEX / f"{key}.json")
        add_name(folder, run.meta, key)
    return folder


def names(folder: Path, key: str | None = None) -> list[dict]:
    """The selection names recorded in a run folder (those of identity `key` when given)."""
    entries = _read(Path(folder) / NAMES, json.loads)
    entries = [e for e in entries or [] if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return [e for e in entries if key is None or e.get("identity") == key]


def add_name(folder: Path, meta: dict, key: str) -> None:
    """Record that `meta` (Run.meta) asked for the run in folder (once per distinct name and sweep)."""
    entry = {**meta, "identity": key}
    have = names(folder)
    if entry in have:
        return
    same = (entry["name"], entry.get("sweep"))  # a newer record of one name replaces the older
    kept = [e for e in have if (e["name"], e.get("sweep")) != same]
    write_json_atomic([*kept, entry], Path(folder) / NAMES)
