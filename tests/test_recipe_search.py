"""analysis.recipe_search: a grid file run as ordinary ablate.py runs, with a results table."""

import pytest
import yaml

from analysis import recipe_search


def grid_file(tmp_path, points):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny", "row": "f", "seeds": 1, "points": points}))
    return path


@pytest.mark.slow  # two real runs through the search (~25 s); the bad-point check below stays fast
def test_points_run_as_ablate_runs_and_are_tabled(tmp_path, capfd):
    # supervised points: one phase each, the quickest real runs
    grid = grid_file(
        tmp_path,
        {
            "base": {"mode": "supervised"},
            "short": {"mode": "supervised", "sets": {"supervised.warmup_epochs": 1}},
        },
    )
    assert recipe_search.main([str(grid), "--runs-dir", str(tmp_path / "runs")]) == 0
    table = (tmp_path / "runs/search/g/results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| base") or line.startswith("| short")]
    assert len(rows) == 2 and all("–" not in r.split("|")[4] for r in rows)  # both have a top-1
    assert "supervised.warmup_epochs=1" in table
    capfd.readouterr()
    # a finished point is reused, not trained again (a neutral --set for every point keeps it the
    # same run); the table still lists every point
    again = [str(grid), "--runs-dir", str(tmp_path / "runs"), "--only", "base", "--set", "runtime.threads=1"]
    assert recipe_search.main(again) == 0
    out = capfd.readouterr().out
    assert "[train]" not in out and out.count("[skip]") == 1 and "| short |" in out


def test_a_bad_point_stops_before_any_work(tmp_path, capsys):
    grid = grid_file(tmp_path, {"base": {}, "bad": {"sets": {"mae.mask_ratoi": 0.5}}})
    assert recipe_search.main([str(grid), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "mae.mask_ratoi" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert recipe_search.main(["no_such_grid"]) == 2
    err = capsys.readouterr().err
    assert "known grids" in err and "laptop" in err


def test_the_laptop_grid_resolves():
    name, grid = recipe_search.load_grid("laptop")
    for point in grid["points"].values():
        assert recipe_search.resolve(recipe_search.point_selection(grid, point or {}))


def test_the_csv_option_writes_the_table_the_docs_render(tmp_path, monkeypatch):
    """--csv writes the search's results (best first, the grid's own settings, the command in its
    header) as the file python -m analysis.docs renders; the points' runs are faked."""
    from analysis import docs

    done = {"short": [{"top1": 55.24, "wall_time_s": 210.0}], "base": [{"top1": 42.4, "wall_time_s": 240}]}
    monkeypatch.setattr(recipe_search.subprocess, "run", lambda *a, **k: type("P", (), {"returncode": 0}))
    monkeypatch.setattr(recipe_search, "point_results", lambda g, p, d: done[p["sets"].get("tag", "base")])
    short = {"sets": {"supervised.warmup_epochs": 1, "tag": "short"}}
    grid = grid_file(tmp_path, {"base": {}, "short": short})
    monkeypatch.setattr(recipe_search, "resolve", lambda sel: [sel])  # 'tag' is not a config key
    out = tmp_path / "figures/laptop/recipe_search.csv"
    argv = [str(grid), "--runs-dir", str(tmp_path / "runs"), "--set", "runtime.threads=1", "--csv", str(out)]
    assert recipe_search.main(argv) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith(f"# written by: python -m analysis.recipe_search {grid} --runs-dir")
    assert lines[1:] == [
        "point,mode,settings,top1,top1_std,seeds,wall_min",
        'short,mae,"supervised.warmup_epochs=1, tag=short",55.2,,1,3.5',
        "base,mae,,42.4,,1,4.0",
    ]
    page = "<!-- results: laptop cell recipe_search point=short top1 -->0<!-- /results -->"
    assert docs.generate(page, tmp_path / "figures") == page.replace(">0<", ">55.2<")
