"""The command prints and writes what the selection ran: the printed table has columns for the
modality that ran only, the report holds files only for the tables with runs, and side-by-side
speed timing runs only when there are two or more rows to compare (or with --bench)."""

import pytest

from tests import test_cli as shared
from tests.test_cli import ablate, fake_speeds

fake = shared.fake  # the fake trainer fixture of test_cli
plotted = shared.plotted  # autouse: plots recorded, not drawn; side-by-side timing faked


@pytest.fixture
def timed(monkeypatch):
    """Side-by-side timings asked for ({row: config} each); fake_speeds answers them."""
    calls = []

    def record(configs, base="mvitv2", attn_backend="math"):
        calls.append(list(configs))
        return fake_speeds(configs, base, attn_backend)

    monkeypatch.setattr("analysis.speed_table.table_speeds", record)
    return calls


def printed_header(out: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith("| row |"))


def report_files(tmp_path, variant="tiny") -> set[str]:
    return {p.name for p in (tmp_path / "runs" / "report" / variant).iterdir()}


def test_step_f_prints_its_columns_writes_its_table_and_times_nothing(tmp_path, capsys, fake, timed, plotted):
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny") == 0
    out = capsys.readouterr().out
    header = printed_header(out)
    assert header == "| row | setting | image top-1 | paper | im/s | x mvitv2 | paper im/s | paper x |"
    assert "video" not in out.split("ours beside the paper's")[-1].split("runs:")[0]
    files = report_files(tmp_path)
    assert {"table1.md", "table1.csv", "table1_differences.csv", "trends.md"} <= files
    assert not {f for f in files if f.startswith(("table3", "fig8"))}, files
    assert not {f for f in files if f.startswith("speed_")}, files  # no timing cache: nothing timed
    assert timed == []
    assert set(plotted) == {"table1_accuracy", "table1_speed", "acc_vs_speed", "differences"}
    index = (tmp_path / "runs/report/index.md").read_text()
    assert "table1.md" in index and "table3" not in index and "fig8" not in index
    md = (tmp_path / "runs/report/tiny/table1.md").read_text()
    assert "image, video: each run's own throughput" in md  # the one row: its run's own timing


def test_step_f_video_prints_video_columns_only(tmp_path, capsys, fake, timed):
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny", "--modality", "video") == 0
    header = printed_header(capsys.readouterr().out)
    assert header.startswith("| row | setting | video top-1 | paper | clip/s |") and "image" not in header
    assert timed == []


def test_one_row_per_table_is_not_timed_but_bench_still_times_it(tmp_path, capsys, fake, timed):
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny") == 0
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny", "--bench") == 0
    assert timed == [["f"]]  # asked for: --bench times the one row
    assert "Timed side by side on fake cpu" in capsys.readouterr().out


def test_two_rows_or_more_still_get_the_speed_table(tmp_path, capsys, fake, timed):
    assert ablate(tmp_path, "--table", "1", "--preset", "tiny") == 0
    assert timed == [["mvitv2", "a", "b", "c", "d", "e", "f"]]
    out = capsys.readouterr().out
    assert "| 1.60x [1.44-1.76] |" in out  # row f: 160 / 100 im/s against mvitv2, side by side
    assert "video" not in printed_header(out)
    files = report_files(tmp_path)
    assert "speed_table1_image.json" in files and "table1.md" in files
    assert not {f for f in files if f.startswith(("table3", "fig8"))}, files  # Fig. 8 has no own run
    md = (tmp_path / "runs/report/tiny/table1.md").read_text()
    assert "image: timed side by side on fake cpu" in md
    assert "| video top-1 |" in md  # the report's table keeps every modality's columns


def test_fig8_and_table3_write_their_own_files(tmp_path, fake, timed):
    assert ablate(tmp_path, "--fig", "8", "--preset", "tiny") == 0
    files = report_files(tmp_path)
    assert {"fig8.md", "fig8.csv", "table1.md"} <= files and not {f for f in files if f.startswith("table3")}
    assert timed == []  # Table 1 has one row (mvitv2, shared with Fig. 8): nothing to compare
    assert ablate(tmp_path, "--table", "3", "--preset", "tiny") == 0
    assert {"table3.md", "table3.csv", "table3_differences.csv"} <= report_files(tmp_path)
