"""Provenance per run: the dirty flag and diff hash of the build, shown by --status and the report
(a table or comparison that mixes builds, or comes from a dirty tree, is marked)."""

import subprocess

from ablations.study import provenance as P
from ablations.study import runs as R
from tests import test_cli as shared
from tests.test_cli import ablate
from tests.test_interactions import trainer

fake, plotted = shared.fake, shared.plotted  # fixtures: fake trainer and measure; plots recorded


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


def test_git_state_sees_a_dirty_tree_and_hashes_its_diff(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(P, "HERE", tmp_path)
    clean = P.git_state()
    assert clean["git_dirty"] is False and clean["git_diff_sha256"] is None and len(clean["git_commit"]) == 40
    (tmp_path / "a.py").write_text("x = 2\n")
    one = P.git_state()
    (tmp_path / "a.py").write_text("x = 3\n")
    two = P.git_state()
    assert one["git_dirty"] and two["git_dirty"] and one["git_diff_sha256"] != two["git_diff_sha256"]
    assert P.build_label(two) == f"{two['git_commit'][:7]}+dirty:{two['git_diff_sha256'][:6]}"
    assert P.build_label({"git_commit": "abcdef0123"}) == "abcdef0 (dirty flag not recorded)"
    assert P.build_label({}) == "unknown build" and not P.is_clean("abcdef0+dirty:123456")


def test_status_and_report_mark_mixed_and_dirty_builds(tmp_path, capsys, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", trainer)  # writes predictions: the report compares f - e
    monkeypatch.setattr(
        R, "build_at_start", lambda: {"git_commit": "1" * 40, "git_dirty": False, "git_diff_sha256": None}
    )
    assert ablate(tmp_path, "--step", "e", "--preset", "tiny") == 0
    report = (tmp_path / "runs/report/tiny/table1.md").read_text()
    assert "One committed build made every run of this table." in report and "`1111111`: 1 run" in report
    dirty = {"git_commit": "2" * 40, "git_dirty": True, "git_diff_sha256": "ab" * 32}
    monkeypatch.setattr(R, "build_at_start", lambda: dirty)
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny") == 0
    report = (tmp_path / "runs/report/tiny/table1.md").read_text()
    assert "**mixed builds, dirty tree**" in report and "`2222222+dirty:ababab`: 1 run" in report
    # the comparison f - e pairs runs of two builds: its line says so
    line = next(ln for ln in report.splitlines() if ln.startswith("| f - e | image |"))
    assert line.rstrip().endswith("| mixed builds, dirty tree |")
    capsys.readouterr()
    assert ablate(tmp_path, "--table", "1", "--preset", "tiny", "--status") == 0
    out = capsys.readouterr().out
    assert "build 1111111" in out and "build 2222222+dirty:ababab" in out
    assert "builds: 1111111; 2222222+dirty:ababab (mixed builds, dirty tree)" in out


def test_a_run_is_labelled_with_the_tree_its_process_started_from(monkeypatch):
    """A commit or edit while a run trains does not relabel it: the state is read once, first."""
    states = iter([{"git_commit": "1" * 40, "git_dirty": False}, {"git_commit": "2" * 40, "git_dirty": True}])
    monkeypatch.setattr(P, "git_state", lambda: next(states))
    P.build_at_start.cache_clear()
    try:
        assert P.build_at_start()["git_commit"] == "1" * 40
        assert P.build_at_start()["git_commit"] == "1" * 40  # the tree changed since: still the first
    finally:
        P.build_at_start.cache_clear()
