"""analysis.probe_search: a grid's MAE points pretrained and probed, without finetuning."""

import csv

import pytest
import yaml

from analysis import probe_search, recipe_search


def grid_file(tmp_path, points, **more):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny", "row": "f", "seeds": 1, "points": points, **more}))
    return path


def read_csv(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# written by: python -m analysis.probe_search")  # the command that wrote it
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def probe_base(tmp_path):
    grid = grid_file(tmp_path, {"base": {"levers": "the preset"}, "hog": {"sets": {"mae.target": "hog"}},
                                "sup": {"mode": "supervised"}})  # fmt: skip
    runs, table = tmp_path / "runs", tmp_path / "out.csv"
    args = [str(grid), "--runs-dir", str(runs), "--csv", str(table), "--train-items", "32", "--only", "base"]
    assert probe_search.main(args) == 0
    (folder,) = [p.parent.parent for p in (runs / "search/g").rglob("pretrain/done.json")]
    return grid, runs, table, args, folder


def test_points_are_pretrained_and_probed_without_finetuning(tmp_path, capfd):
    grid, runs, table, args, folder = probe_base(tmp_path)
    (line,) = read_csv(table)  # the supervised point has no encoder: not a point here
    assert (line["point"], line["row"], line["levers"], line["pretrain clips x epochs"]) == (
        "base",
        "f",
        "the preset",
        "64 x 1",
    )
    assert 0 <= float(line["probe top-1"]) <= 100 and float(line["token spread"]) > 0
    assert line["passes"] == ("yes" if float(line["probe top-1"]) > float(line["random-init probe"])
                              and float(line["token spread"]) >= 0.25 else "no")  # fmt: skip
    assert not (folder / "finetune").exists() and not (folder / "metrics.json").exists()
    assert "--only" not in table.read_text().splitlines()[0]  # the header names the whole search
    capfd.readouterr()
    # probing another point keeps the first's line and trains nothing for it
    assert probe_search.main([*args[:-1], "hog"]) == 0
    assert [r["point"] for r in read_csv(table)] == ["base", "hog"]
    assert capfd.readouterr().out.count("[train]") == 1


@pytest.mark.slow  # a whole ablate.py run after the probe (~1 min)
def test_the_full_run_of_a_probed_point_finetunes_only(tmp_path, capfd):
    grid, runs, _, _, folder = probe_base(tmp_path)
    pretrained = (folder / "pretrain/done.json").read_text()
    capfd.readouterr()
    assert recipe_search.main([str(grid), "--runs-dir", str(runs), "--only", "base"]) == 0
    assert "[resume]" in capfd.readouterr().out and (folder / "metrics.json").exists()
    assert (folder / "pretrain/done.json").read_text() == pretrained and (
        folder / "finetune/done.json"
    ).exists()


def test_a_bad_point_or_row_stops_before_any_work(tmp_path, capsys):
    grid = grid_file(tmp_path, {"base": {}, "bad": {"sets": {"mae.mask_ratoi": 0.5}}})
    assert probe_search.main([str(grid), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "mae.mask_ratoi" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert probe_search.main([str(grid_file(tmp_path, {"base": {}})), "--rows", "z"]) == 2
    assert probe_search.main([str(grid), "--only", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_the_video_grid_resolves_for_rows_b_and_f():
    _, grid = recipe_search.load_grid("video")
    assert grid["modality"] == "video"
    for label, point in grid["points"].items():
        if (point or {}).get("mode") != "supervised":
            for row in ("b", "f"):
                run = probe_search.point_run(grid, point, row)
                assert run.modality == "video" and run.config["model"]["step"] == row, label


def test_unfinished_probes_the_last_checkpoint_and_trains_nothing(tmp_path, capfd):
    grid, runs, table, args, folder = probe_base(tmp_path)
    for name in ("done.json", "encoder.pth", probe_search.PROBE):  # as if stopped after its last epoch
        (folder / "pretrain" / name).unlink()
    capfd.readouterr()
    assert probe_search.main([*args, "--unfinished"]) == 0
    (line,) = read_csv(table)
    assert line["pretrain clips x epochs"] == "64 x 1 of 1 (unfinished)" and float(line["token spread"]) > 0
    assert "[train]" not in capfd.readouterr().out and not (folder / "pretrain/done.json").exists()
    # a later search keeps the line until the point has a finished probe
    assert probe_search.main([*args[:-1], "hog"]) == 0
    assert [r["point"] for r in read_csv(table)] == ["base", "hog"]
