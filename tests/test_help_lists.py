"""--help and --list read the preset, table and row files, the lists the docs point to: a file
added there shows up in both, and neither lists a name by hand."""

import pytest
import yaml

from ablations.cli import main as cli
from ablations.cli.parser import parser
from ablations.study import config as C
from models.steps import ROWS_FILE


def help_text(monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per flag: no name split by the wrapping
    return parser().format_help()


def list_text(capsys) -> str:
    assert cli.main(["--list"]) == 0
    return capsys.readouterr().out


def flag_help(text: str, flag: str) -> str:
    return next(ln for ln in text.splitlines() if ln.lstrip().startswith(f"{flag} "))


def test_help_and_list_name_every_preset_table_and_row_file(monkeypatch, capsys):
    presets = sorted(p.stem for p in C.PRESET_DIR.glob("*.yaml"))
    tables = sorted(p.stem for p in C.TABLE_DIR.glob("*.yaml"))
    rows = list(yaml.safe_load(ROWS_FILE.read_text()))
    assert "laptop" in presets and {"table1", "table3", "fig8"} <= set(tables)
    text, listed = help_text(monkeypatch), list_text(capsys)
    assert f"{', '.join(rows)};" in flag_help(text, "--step")
    for p in presets:
        assert p in flag_help(text, "--preset").split(";")[0].replace(",", " ").split(), p
        assert f"\n  {p} " in listed, p
    for t in tables:
        flag, number = C.table_flag(t).split()
        assert (f"{number} = {t} (" if number != t else f" {t} (") in flag_help(text, flag), t
        assert f"\n  {t} " in listed, t
    for r in rows:
        assert f"\n  {r} " in listed, r


def test_the_lists_come_from_the_files_not_from_the_code(monkeypatch, capsys):
    """A new preset, table and row (as if their files had been added) appear in --help and --list."""
    presets, tables, rows = C.list_presets(), C.list_tables(), C.list_rows()
    monkeypatch.setattr(C, "list_presets", lambda: [*presets, "my-preset"])
    monkeypatch.setattr(C, "list_tables", lambda: [*tables, "table9"])
    monkeypatch.setattr(C, "list_rows", lambda: [*rows, "g"])
    real_preset, real_table = C.load_preset, C.load_table
    mine = {"preset": {"description": "mine"}}
    monkeypatch.setattr(C, "load_preset", lambda n, *a: mine if n == "my-preset" else real_preset(n, *a))
    table9 = {"title": "Table 9: mine", "rows": {}}
    monkeypatch.setattr(C, "load_table", lambda n: table9 if n == "table9" else real_table(n))
    real_entries = C.table_entries
    monkeypatch.setattr(C, "table_entries", lambda n, m: [] if n == "table9" else real_entries(n, m))
    text = help_text(monkeypatch)
    assert "my-preset" in flag_help(text, "--preset")
    assert "9 = table9 (Table 9: mine)" in flag_help(text, "--table")
    assert ", f, g;" in flag_help(text, "--step")
    listed = list_text(capsys)
    assert "\n  my-preset  mine" in listed and "\n  table9   --table 9  Table 9: mine" in listed
    assert "\n  g " in listed


def test_list_says_where_each_list_comes_from(capsys):
    listed = list_text(capsys)
    assert "Rows (--step; from models/rows.yaml" in listed
    assert "Tables (--table N / --fig N; from ablations/study/tables/;" in listed
    assert "Presets (--preset; from ablations/study/presets/;" in listed


@pytest.mark.parametrize("args, error", [
    (["--table", "8"], "fig8 is --fig 8, not --table 8."),
    (["--table", "2"], "Valid: --table loo, --table one, --table 1, --table 3, --fig 8, or a table file"),
    (["--fig", "3"], "Unknown figure '3'. Valid: 8."),
])  # fmt: skip
def test_table_flags_are_checked_against_the_table_files(capsys, args, error):
    assert cli.main([*args, "--dry-run"]) == 2
    assert error in capsys.readouterr().err
