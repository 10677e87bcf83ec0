"""Where a table or preset comes from: a built-in name, or a user's YAML file.

    src = table_source("1")            # Source("table1", .../tables/table1.yaml, builtin=True)
    src = table_source("./mine.yaml")  # Source("mine", /abs/mine.yaml, builtin=False)
    src = preset_source("cpu")

A user file is named by its top-level `name:` (else its stem). Run folders and the report carry
that name, so a user name equal to a built-in one is refused (the two would share run folders).
The run identity holds the resolved content, never the path: moving the file retrains nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ablations.errors import ConfigError
from ablations.study.homes import RESERVED
from ablations.study.yaml_files import load_yaml
from models.hints import did_you_mean

HERE = Path(__file__).parent
PRESET_DIR = HERE / "presets"
TABLE_DIR = HERE / "tables"
# Short names for the paper's tables (--table 1, --table 3, --fig 8).
TABLE_ALIASES = {"1": "table1", "3": "table3", "8": "fig8"}
# A name is a folder in runs/: letters, digits and ._+- only.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Source:
    name: str  # what run folders and the report are named after
    path: Path
    builtin: bool

    @property
    def origin(self) -> str:
        """For --list: the built-in file relative to the repository, or the user file."""
        return (
            f"built-in {self.path.relative_to(HERE.parent.parent)}" if self.builtin else f"file {self.path}"
        )


def is_path(arg: str) -> bool:
    """A file, not a name: it ends in .yaml/.yml or has a folder in it."""
    return str(arg).endswith((".yaml", ".yml")) or "/" in str(arg)


def builtin_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def table_source(arg: str) -> Source:
    return _source(TABLE_ALIASES.get(str(arg), str(arg)), TABLE_DIR, "table", "--table 1, --table 3, --fig 8")


def preset_source(arg: str, relative_to: Path | None = None) -> Source:
    """A preset name or file; a relative path inside a preset file (extends:) is relative to it."""
    return _source(str(arg), PRESET_DIR, "preset", "--preset cpu", relative_to)


def _source(arg: str, folder: Path, kind: str, example: str, relative_to: Path | None = None) -> Source:
    names = builtin_names(folder)
    if not is_path(arg):
        if arg not in names:
            raise ConfigError(
                f"Unknown {kind} {arg!r}.{did_you_mean(arg, names)} "
                f"Or give a YAML file: --{kind} ./my_{kind}.yaml"
                f" (e.g. {example})."
            )
        return Source(arg, folder / f"{arg}.yaml", True)
    path = Path(arg).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to.parent / path
    path = path.resolve()
    if path.is_dir():
        raise ConfigError(f"--{kind} {arg}: {path} is a folder. Give the path of a YAML {kind} file.")
    if not path.is_file():
        raise ConfigError(f"--{kind} {arg}: no such file ({path}). Give the path of a YAML {kind} file.")
    if path.parent == folder.resolve():
        return Source(path.stem, path, True)
    name = _declared_name(path) or path.stem
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{path}: name {name[:40]!r} is not a folder name: use letters, digits and ._+- only."
        )
    if kind == "table" and name in RESERVED:
        raise ConfigError(
            f"{path}: name {name!r} is a name the runs folder uses for itself ({', '.join(RESERVED[:3])}). "
            "Set another `name:` at the top of the file."
        )
    if name in names or name in TABLE_ALIASES:
        raise ConfigError(
            f"{path}: name {name!r} is the built-in {kind} {name!r}: the two would share run folders. "
            f"Set another `name:` at the top of the file."
        )
    return Source(name, path, False)


def _declared_name(path: Path) -> str | None:
    name = load_yaml(path).get("name")
    if isinstance(name, (dict, list)):
        raise ConfigError(f"{path}: name: must be text (a folder name), got a {type(name).__name__}.")
    return None if name is None else str(name)
