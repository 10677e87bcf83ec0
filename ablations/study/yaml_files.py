"""Read a YAML file once per process (presets, tables, user files), as a fresh dict each time."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from ablations.errors import ConfigError

# A table or preset file is a page of text; a larger file is a mistake (a data file given as
# --table), and parsing it would take minutes before any message.
MAX_FILE_BYTES = 1 << 20
DEEP = "nested too deep to read (brackets thousands deep); no table or preset is. Fix the file."


def load_yaml(path: Path) -> dict:
    """A YAML mapping as a fresh dict (callers may modify it); a file that is missing, a folder,
    too large, not text, not YAML or not a mapping is a ConfigError naming the file and the fix."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}). Give the path of a YAML file.") from None
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder. Give the path of a YAML file in it.")
    if stat.st_size > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: {stat.st_size / 2**20:.1f} MiB; a table or preset file is at most "
            f"{MAX_FILE_BYTES // 2**20} MiB of text. Give the YAML file (not a data file), or split it."
        )
    try:
        return copy.deepcopy(_parse(path, stat.st_mtime_ns))
    except RecursionError:  # brackets nested thousands deep
        raise ConfigError(f"{path}: {DEEP}") from None


@functools.cache
def _parse(path: Path, mtime_ns: int) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}). Check the file's permissions.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a text file (byte {raw[e.start]:#04x} at offset {e.start} is not UTF-8). "
            "Give a YAML table or preset file."
        ) from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:  # the problem and where; never the quoted line (it may be huge)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(problem.split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}. Fix the file.") from None
    except RecursionError:
        raise ConfigError(f"{path}: {DEEP}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        got = {list: "a list", str: "text"}.get(type(tree), type(tree).__name__)
        raise ConfigError(f"{path}: expected a mapping of keys at the top (key: value), got {got}.")
    return tree
