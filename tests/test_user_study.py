"""Your own study through the CLI on the tiny preset: a user table file with an inline row and a
sweep, a user preset extending a built-in, the interaction tables loo and one, and bad user files
refused before any work. Real training (tiny: seconds); measuring and Table 1 plots are faked."""

import json
import shutil

import pytest
import yaml

from ablations.cli import main as cli
from ablations.study import runs as R

SMALL = ["--preset", "tiny", "--set", "data.train_size=32", "data.val_size=16", "pretrain.batch_size=16",
         "finetune.batch_size=16", "supervised.batch_size=16"]  # fmt: skip


def fake_measure(cfg, attn_backend="math"):
    return {"params": 1000, "macs": 1000, "throughput": 1.0, "throughput_by_dtype": {"float32": 1.0}}


@pytest.fixture(autouse=True)
def fast_report(monkeypatch, one_thread, paper_figures_off):
    """Real training; the model measurement and the paper tables' figures are faked (slow, and
    drawn by tests/test_analysis.py); the new figures (interactions, sweeps) are drawn."""
    monkeypatch.setattr(R, "measure_model", fake_measure)
    monkeypatch.setattr("analysis.report.copy_reconstructions", lambda *a, **k: [])


def ablate(tmp_path, *args):
    return cli.main([*args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])


def write(path, text):
    path.write_text(text)
    return str(path)


def test_user_table_with_an_inline_row_and_a_sweep(tmp_path, capsys):
    table = write(tmp_path / "conv.yaml", "name: mine\ntitle: mine\nrows:\n"
                  "  f+attn: {from: f, model: {attn_residual: true}, mode: mae}\n")  # fmt: skip
    sweep = ["mae.mask_ratio=0.4,0.6"]
    assert ablate(tmp_path, "--table", table, *SMALL, sweep[0], "--dry-run") == 0
    runs = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("# run:")]
    assert len(runs) == 2 and all(r.startswith("# run: mine/f+attn/image/tiny+") for r in runs)
    assert ablate(tmp_path, "--table", table, *SMALL, sweep[0]) == 0
    out = capsys.readouterr().out
    assert "Sweep (" in out and "| table1" not in out
    folders = sorted((tmp_path / "runs/mine/f+attn/image").iterdir())
    assert len(folders) == 2  # one variant folder per value
    metrics = [json.loads((f / "seed0/metrics.json").read_text()) for f in folders]
    assert {m["run"]["sweep"]["values"]["mae.mask_ratio"] for m in metrics} == {0.4, 0.6}
    assert all(m["run"]["overrides"] == {"attn_residual": True} for m in metrics)
    (sweep_dir,) = (tmp_path / "runs/report/sweeps").iterdir()
    md = (sweep_dir / "sweep.md").read_text()
    assert "| mine/f+attn | image | 0.4 |" in md and "| mine/f+attn | image | 0.6 |" in md and "[" in md
    assert (sweep_dir / "sweep.png").exists()
    # the definition is kept with the runs: --report works after the file is gone
    assert yaml.safe_load((tmp_path / "runs/mine/table.yaml").read_text())["name"] == "mine"
    (tmp_path / "conv.yaml").unlink()
    assert ablate(tmp_path, "--report") == 0
    assert any((tmp_path / "runs/report").glob("tiny+*/mine.md"))
    assert (tmp_path / "runs/report/index.md").read_text().count("sweeps/") == 1
    # another file with the same name and other rows would share the folders: refused
    (tmp_path / "other").mkdir()
    other = write(
        tmp_path / "other" / "conv.yaml",
        "name: mine\nmode: mae\nrows:\n  f+kv: {from: f, model: {kv: pool}}\n",
    )
    assert ablate(tmp_path, "--table", other, *SMALL, "--dry-run") == 2
    assert "table name 'mine' is already used under" in capsys.readouterr().err


def test_user_preset_extends_a_built_in_and_names_its_folders(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    text = (
        'name: tinier\npreset: {extends: tiny, description: "tiny, one more epoch"}\nfinetune: {epochs: 2}\n'
    )
    preset = write(tmp_path / "a" / "p.yaml", text)
    args = ["--step", "f", "--preset", preset, "--set", "data.train_size=32", "data.val_size=16",
            "pretrain.batch_size=16", "finetune.batch_size=16"]  # fmt: skip
    assert ablate(tmp_path, *args) == 0
    (folder,) = (tmp_path / "runs/table1/f/image").glob("tinier+*")
    cfg = yaml.safe_load((folder / "seed0/config.yaml").read_text())
    assert cfg["finetune"]["epochs"] == 2 and cfg["pretrain"]["epochs"] == 1
    assert (tmp_path / f"runs/report/{folder.name}/table1.md").exists()
    # the identity holds the content, not the path: the file moved, nothing retrains
    (tmp_path / "b").mkdir()
    moved = str(shutil.copy(preset, tmp_path / "b" / "p.yaml"))
    capsys.readouterr()
    assert ablate(tmp_path, *[moved if a == preset else a for a in args]) == 0
    assert "[skip] table1/f/image/tinier+" in capsys.readouterr().out
    assert cli.main(["--list", "--preset", moved]) == 0
    assert f"tinier     tiny, one more epoch  [image, video]  <- file {moved}" in capsys.readouterr().out


def test_loo_dry_run_says_why_and_one_entry_trains(tmp_path, capsys):
    assert ablate(tmp_path, "--table", "loo", *SMALL, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "# [refused] loo/f+relative (image): loo/f+relative: model.overrides" in out
    names = [ln[len("# run: ") :].split("/image")[0] for ln in out.splitlines() if ln.startswith("# run:")]
    assert names[:6] == [
        "table1/f",
        "loo/f+conv",
        "loo/f+stride1",
        "loo/f+overlap",
        "loo/f+attn_res",
        "table1/e",
    ]
    assert ablate(tmp_path, "--table", "loo", "--step", "f+attn_res", *SMALL) == 0
    out = capsys.readouterr().out
    assert "| f+attn_res | mae | f attn_residual=True |" in out and "| f+relative |" in out
    assert "| a |" in out  # the interactions table: per component, alone vs path
    report = next((tmp_path / "runs/report").glob("tiny+*"))
    assert "refused: " in (report / "loo.md").read_text()
    assert (report / "loo_interactions.png").exists() and (report / "loo_interactions.csv").exists()


def test_one_dry_run_and_one_supervised_entry(tmp_path, capsys):
    assert ablate(tmp_path, "--table", "one", *SMALL, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "# [refused] one/mvitv2-kv_pool (image)" in out and "# run: one/mvitv2-conv/image/" in out
    assert ablate(tmp_path, "--table", "one", "--mode", "mae", *SMALL, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "# [refused] one/mvitv2-conv@mae (image)" in out and "# run: table1/f/" in out
    assert ablate(tmp_path, "--table", "one", "--step", "mvitv2-attn_res", *SMALL) == 0
    folder = next((tmp_path / "runs/one/mvitv2-attn_res/image").iterdir())
    m = json.loads((folder / "seed0/metrics.json").read_text())
    assert m["run"]["mode"] == "supervised" and m["run"]["overrides"] == {"attn_residual": False}
    md = (tmp_path / "runs/report" / folder.name / "one_interactions.md").read_text()
    assert "| e | mvitv2-attn_res | image |" in md


MAE = "mode: mae\n"
BAD_TABLES = [
    ("rows:\n  x: {from: f, model: {atn_residual: true}}\n" + MAE,
     ["rows.x.model.atn_residual", "Did you mean 'attn_residual'"]),
    ("rows:\n  x: {from: g, model: {pool: conv}}\n" + MAE, ["rows.x.from: unknown row 'g'"]),
    ("rows:\n  x: {from: f, model: {pool: avgg}}\n" + MAE, ["rows.x.model.pool='avgg'", "Valid: conv"]),
    ("rows:\n  x: {from: a, model: {position: relative, kv: pool}}\n" + MAE,
     ["position: relative cannot be trained with sparse MAE", "Fix: position: absolute"]),
    ("rows:\n  x: {from: f, model: {overlap: true}}\n" + MAE,
     ["overlap: true under MAE needs separate_and_pad: true", "Fix: add separate_and_pad"]),
    ("rows:\n  x: {from: f, model: {mask_unit_size: [3, 3]}}\n" + MAE,
     ["rows.x", "mask units", "input size that is a multiple"]),
    ("rows:\n  y: {mode: mae}\n", ["rows.y: 'y' is not a built-in row", "from: f"]),
    ("name: table1\nrows:\n  f: {mode: mae}\n",
     ["name 'table1' is the built-in table", "Set another `name:`"]),
    ("rows: [f\n", ["not valid YAML"]),
    ("rows:\n  f: {mode: mea}\n", ["rows.f.mode='mea'", "mode: mae or mode: supervised"]),
]  # fmt: skip


@pytest.mark.parametrize("text, words", BAD_TABLES)
def test_bad_table_files_are_refused_before_any_work(tmp_path, capsys, monkeypatch, text, words):
    monkeypatch.setattr(R, "run_training", lambda *a, **k: pytest.fail("trained"))
    table = write(tmp_path / "bad.yaml", text)
    assert ablate(tmp_path, "--table", table, "--preset", "tiny") == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "bad.yaml") in err or "bad" in err
    for w in words:
        assert w in err, err
    assert not (tmp_path / "runs").exists()


BAD_PRESETS = [
    ("preset: {extends: tiny}\npretrain: {epoch: 2}\n",
     ["p.yaml: pretrain.epoch: unknown key. Did you mean 'pretrain.epochs'?"]),
    ("preset: {extends: ./missing.yaml}\n", ["no such file", "missing.yaml"]),
    ("preset: {description: mine}\nmode: mae\n", ["missing key", "preset: {extends: cpu}"]),
    ("preset: {extends: tiny}\npretrain: {epochs: 0}\n", ["pretrain.epochs=0 must lie in"]),
    ("name: cpu\npreset: {extends: tiny}\n", ["name 'cpu' is the built-in preset"]),
]  # fmt: skip


@pytest.mark.parametrize("text, words", BAD_PRESETS)
def test_bad_preset_files_are_refused_before_any_work(tmp_path, capsys, monkeypatch, text, words):
    monkeypatch.setattr(R, "run_training", lambda *a, **k: pytest.fail("trained"))
    preset = write(tmp_path / "p.yaml", text)
    assert ablate(tmp_path, "--step", "f", "--preset", preset) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err
    assert not (tmp_path / "runs").exists()


def test_a_preset_may_extend_another_file(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", "name: base1\npreset: {extends: tiny}\nfinetune: {epochs: 3}\n")
    child = write(tmp_path / "sub" / "child.yaml", "preset: {extends: ../base.yaml}\npretrain: {epochs: 2}\n")
    assert ablate(tmp_path, "--step", "f", "--preset", child, "--dry-run") == 0
    cfg = yaml.safe_load(capsys.readouterr().out.split("\n", 3)[-1])
    assert (cfg["pretrain"]["epochs"], cfg["finetune"]["epochs"]) == (2, 3)


MORE_BAD_TABLES = [
    ("mode: mae\nrows:\n  my row: {}\n", ["rows.my row: a row name is a folder name"]),
    ("mode: mae\ninteraction: {reference: g}\nrows:\n  f: {}\n", ["interaction.reference", "one of ['f']"]),
    (
        "mode: mae\ninteraction: {reference: f, change: putback}\nrows:\n  f: {}\n",
        ["Did you mean 'put_back'"],
    ),
    ("mode: mae\nrows:\n  f: {component: z}\n", ["rows.f.component='z'", "Valid: a, b, c, d, e, f"]),
    ("mode: mae\nrefused: ignore\nrows:\n  f: {}\n", ["refused: 'ignore'", "Valid: error, explain"]),
]


@pytest.mark.parametrize("text, words", MORE_BAD_TABLES)
def test_more_bad_table_files(tmp_path, capsys, text, words):
    assert (
        ablate(tmp_path, "--table", write(tmp_path / "bad.yaml", text), "--preset", "tiny", "--dry-run") == 2
    )
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
