"""--set comma lists: one run per value (product over keys), with --seeds, --dry-run, --status and
--only (what each --launcher job runs); quoting a literal comma. Training is faked here (the real
thing: tests/test_user_study.py)."""

import pytest
import yaml

from ablations.cli import main as cli
from ablations.cli.launch.submit import job_argv
from ablations.study import config as C
from ablations.study import runs as R
from ablations.study.sweep import Sweep, points, split_values


@pytest.mark.parametrize(
    "raw, values",
    [
        ("0.4,0.6,0.8", [0.4, 0.6, 0.8]),
        ("0.5", 0.5),
        ("[32,32]", [32, 32]),  # brackets keep their commas: one value
        ("[32,32],[64,64]", [[32, 32], [64, 64]]),
        ("'a,b'", "a,b"),  # so do quotes
        ("/data/a\\,b", "/data/a,b"),  # and a backslash
        ("{spatial: 1, temporal: 2}", {"spatial": 1, "temporal": 2}),
        ("pixel,hog", ["pixel", "hog"]),
    ],
)
def test_comma_lists_and_literal_commas(raw, values):
    got = C.parse_sets([f"k={raw}"])["k"]
    assert (
        isinstance(got, Sweep) == isinstance(values, list) and list(got) == values
        if isinstance(got, Sweep)
        else got == values
    )


def test_product_over_swept_keys_first_key_slowest():
    sets = {"a": Sweep([1, 2]), "b": Sweep(["x", "y"]), "c": 0}
    assert [v for _, v in points(sets)] == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"},
    ]  # fmt: skip
    assert all(s["c"] == 0 for s, _ in points(sets))
    with pytest.raises(C.ConfigError, match="empty value"):
        split_values("k", "0.4,,0.6")


def fake_train(cfg, run_dir, progress=True):
    (run_dir / "finetune").mkdir(parents=True, exist_ok=True)
    return {"top1": 50.0 + 10 * cfg["mae"]["mask_ratio"], "top5": 90.0, "train_time_s": 1.0}


def fake_measure(cfg, attn_backend="math"):
    return {"params": 1, "macs": 1, "throughput": 1.0, "throughput_by_dtype": {"float32": 1.0}}


def test_sweep_with_seeds_dry_run_status_and_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(R, "run_training", fake_train)
    monkeypatch.setattr(R, "measure_model", fake_measure)
    monkeypatch.setattr("analysis.report.write_report", lambda runs_dir, *a, **k: tmp_path)
    base = ["--step", "f", "--preset", "tiny", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    sweep = ["--set", "mae.mask_ratio=0.4,0.6", "--seeds", "2"]
    assert cli.main([*base, *sweep, "--dry-run"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert sorted((d["mae"]["mask_ratio"], d["seed"]) for d in docs) == [
        (0.4, 0),
        (0.4, 1),
        (0.6, 0),
        (0.6, 1),
    ]
    runs = C.resolve(C.Selection(step="f", preset="tiny", sets=C.parse_sets(sweep[1:2]), seeds=2))
    assert len({r.variant for r in runs}) == 2 and len({r.sweep["id"] for r in runs}) == 1
    assert cli.main([*base, *sweep, "--status"]) == 0
    assert "\n4 not started" in capsys.readouterr().out
    # a launcher's job: the same command with --only <one run of it>
    assert cli.main([*base, *sweep, "--only", runs[1].name]) == 0
    assert cli.main([*base, *sweep, "--status"]) == 0
    out = capsys.readouterr().out
    assert "3 not started" in out and "1 finished" in out
    with pytest.raises(C.ConfigError, match="two values or more"):
        C.resolve(C.Selection(step="f", preset="tiny", sets={"mae.mask_ratio": Sweep([0.4])}))


def test_a_sweep_of_list_values_is_one_table_and_plot(tmp_path, monkeypatch, paper_figures_off):
    monkeypatch.setattr(R, "run_training", fake_train)
    monkeypatch.setattr(R, "measure_model", fake_measure)
    runs = tmp_path / "runs"
    args = ["--step", "f", "--preset", "tiny", "--runs-dir", str(runs), "--quiet"]
    sweep = ["--set", "pretrain.aug.rrc_scale=[0.5,1.0],[0.2,1.0]", "mae.mask_ratio=0.4,0.6"]
    assert cli.main([*args, *sweep]) == 0
    (folder,) = (runs / "report/sweeps").iterdir()
    md = (folder / "sweep.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| table1/f |")]
    assert len(rows) == 4 and rows[0].startswith("| table1/f | image | [0.2, 1.0] | 0.4 |")
    # the baseline is the preset's own point (rrc_scale [0.2, 1.0], mask_ratio 0.6), not the first row
    assert rows[1].startswith("| table1/f | image | [0.2, 1.0] | 0.6 | 56.00 | (baseline) |")
    assert rows[0].startswith(
        "| table1/f | image | [0.2, 1.0] | 0.4 | 54.00 | – |"
    )  # no predictions: no interval
    assert (folder / "sweep.png").exists()


def test_a_launcher_job_keeps_the_sweep_and_finds_the_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "--table",
        "./mine.yaml",
        "--preset=p/x.yaml",
        "--set",
        "mae.mask_ratio=0.4,0.6",
        "--launcher",
        "slurm",
    ]
    job = job_argv(argv, tmp_path / "runs")
    assert job[:5] == ["--table", str(tmp_path / "mine.yaml"), f"--preset={tmp_path / 'p/x.yaml'}", "--set",
                       "mae.mask_ratio=0.4,0.6"]  # fmt: skip
    assert "--launcher" not in job and job[-3:] == ["--runs-dir", str(tmp_path / "runs"), "--quiet"]
