"""The definitions of the tables that are not the paper's, kept beside their runs.

    save_definition(runs_dir, "./mine.yaml")   # runs/mine/table.yaml (when training starts)
    definitions(runs_dir)                      # {"mine": spec, "loo": spec, ...}

`ablate.py --report` reads every finished run without a selection; a user table's file may have
moved since, so its content (the resolved definition, not the path) is stored under runs/<name>/.
Built-in tables (loo, one) are read from the package.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ablations.errors import ConfigError
from ablations.store.atomic import write_atomic
from ablations.study import sources as S
from ablations.study.config import PAPER_TABLES, list_tables, load_table
from ablations.study.yaml_files import load_yaml

FILE = "table.yaml"


def check_definition(runs_dir: Path, table: str) -> None:
    """Two different table files with one name would share run folders: the second is refused
    while the first's definition (another file, other content) is kept under runs/<name>/."""
    src = S.table_source(table)
    path = Path(runs_dir) / src.name / FILE
    if src.builtin or not path.exists():
        return
    try:
        kept, first = load_yaml(path), path.read_text().split("\n", 1)[0].removeprefix("# from ")
    except (ConfigError, OSError, UnicodeDecodeError):  # damaged: this command rewrites it (save_definition)
        return
    if first != str(src.path) and kept != load_table(table) | {"name": src.name}:
        raise ConfigError(
            f"{src.path}: table name {src.name!r} is already used under {Path(runs_dir) / src.name} by "
            f"{first}, with other rows. Set another `name:` at the top of the file, or use another "
            "--runs-dir."
        )


def save_definition(runs_dir: Path, table: str) -> None:
    src = S.table_source(table)
    if src.builtin:
        return
    spec = load_table(table) | {"name": src.name}
    (Path(runs_dir) / src.name).mkdir(parents=True, exist_ok=True)
    write_atomic(
        Path(runs_dir) / src.name / FILE, f"# from {src.path}\n" + yaml.safe_dump(spec, sort_keys=False)
    )


def definitions(runs_dir: Path, damaged: list | None = None) -> dict[str, dict]:
    """{table name: spec} of the built-in non-paper tables and the user tables with runs here. A
    kept definition that does not read is left out, and (name, why, fix) appended to `damaged`."""
    out = {t: load_table(t) for t in list_tables() if t not in PAPER_TABLES}
    for path in sorted(Path(runs_dir).glob(f"*/{FILE}")):
        if path.parent.name in out:
            continue
        try:
            out[path.parent.name] = load_yaml(path)
        except (ConfigError, OSError, UnicodeDecodeError) as e:
            if damaged is not None:
                first = _first_line(path).removeprefix("# from ")
                table = first if first.endswith((".yaml", ".yml")) else "<its table file>"
                fix = f"rerun its table (python ablate.py --table {table} ...) to rewrite it"
                damaged.append((path.parent.name, str(e).rstrip("."), fix))
    return out


def _first_line(path: Path) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""
