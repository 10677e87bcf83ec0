"""Read a YAML file once per process (presets, tables, user files), as a fresh dict each time."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from ablations.errors import ConfigError


def load_yaml(path: Path) -> dict:
    """A YAML mapping as a fresh dict (callers may modify it); a broken or non-mapping file is a
    ConfigError naming the file and the line."""
    path = Path(path)
    return copy.deepcopy(_parse(path, path.stat().st_mtime_ns))


@functools.cache
def _parse(path: Path, mtime_ns: int) -> dict:
    try:
        with open(path) as f:
            tree = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}. Fix the file.") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(tree).__name__}.")
    return tree
