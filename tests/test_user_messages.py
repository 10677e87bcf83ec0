"""What a user reads when a file or a command line is wrong: each case a user ran into, through
ablate.py's main (in process). One line with the file, the key path, what was found and the fix;
exit 2; nothing written."""

import time

import pytest
import yaml

from ablations.cli import main as cli
from ablations.study import runs as R
from analysis import feature_probe as FP


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    monkeypatch.setattr(R, "run_training", lambda *a, **k: pytest.fail("trained"))


def ablate(tmp_path, capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main([*args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    return rc, capsys.readouterr().err


def refused(tmp_path, capsys, *args) -> str:
    """The one error line of a command that must be refused before any work."""
    rc, err = ablate(tmp_path, capsys, *args)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()
    return lines[0]


def table(tmp_path, text: str) -> str:
    (tmp_path / "mine.yaml").write_text(text)
    return str(tmp_path / "mine.yaml")


def preset(tmp_path, text: str) -> str:
    (tmp_path / "p.yaml").write_text("preset: {extends: tiny}\n" + text)
    return str(tmp_path / "p.yaml")


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("extra", [[], ["--list"]], ids=["run", "list"])
def test_rows_as_a_list(tmp_path, capsys, extra):
    path = table(tmp_path, "rows:\n  - f\n")
    line = refused(tmp_path, capsys, "--table", path, *extra)
    assert f"{path}: rows: must be a mapping of row name: row, got a list" in line
    assert "rows: {f: {mode: mae}}" in line


def test_a_sweep_in_a_tables_set(tmp_path, capsys):
    flow = table(tmp_path, "rows:\n  f: {mode: mae, set: {mae.mask_ratio: 0.5,0.9}}\n")  # 0.9 is a key
    line = refused(tmp_path, capsys, "--table", flow)
    assert (
        "rows.f.set: mae.mask_ratio: a sweep belongs on the command line (--set mae.mask_ratio=0.5,0.9)"
        in line
    )
    block = table(tmp_path, "rows:\n  f:\n    mode: mae\n    set:\n      mae.mask_ratio: 0.5,0.9\n")
    line = refused(tmp_path, capsys, "--table", block)
    assert (
        "rows.f.set.mae.mask_ratio: '0.5,0.9' is a sweep" in line and "--set mae.mask_ratio=0.5,0.9" in line
    )


@pytest.mark.parametrize(
    "text, words",
    [
        ("pretrain: {aug: {rrc_scale: 0.2}}\n", "pretrain.aug.rrc_scale: must be a list [...], got 0.2"),
        ("finetune: 3\n", "finetune: must be a mapping (key: value), got 3"),
        ("mae: {mask_ratio: [0.6]}\n", "mae.mask_ratio: must be a number, got a list"),
        (
            "extends: cpu\n",
            "extends: not a key here: it belongs in the preset's own section: preset: {extends",
        ),
        ("pretrain: {epoch: 2}\n", "pretrain.epoch: unknown key. Did you mean 'pretrain.epochs'?"),
        # the memory plan is computed by --device-mem; a hand-written one crashed --dry-run
        ('runtime: {plan: {"": null}}\n', "runtime.plan: must be nothing (null), got a mapping"),
        # a control character in a key (YAML "\x1e") is escaped: the message stays one line
        ('model: {overrides: {"\\x1e": 1, 0: 2}}\n', "model.overrides.\\x1e: unknown"),
    ],
    ids=[
        "rrc-scale-number",
        "phase-number",
        "list-for-number",
        "top-level-extends",
        "typo",
        "plan",
        "control-character",
    ],  # fmt: skip
)
def test_preset_files_of_the_wrong_shape(tmp_path, capsys, text, words):
    path = preset(tmp_path, text)
    line = refused(tmp_path, capsys, "--step", "f", "--preset", path)
    assert f"{path}: {words}" in line


def test_the_memory_plan_is_not_set_by_hand(tmp_path, capsys):
    line = refused(tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", "runtime.plan={a: 1}")
    assert line.endswith("--set runtime.plan: the memory plan is computed; give --device-mem GIB instead.")


def test_the_same_value_by_set_gets_the_same_words(tmp_path, capsys):
    line = refused(
        tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", "pretrain.aug.rrc_scale=[a,b]"
    )
    assert line.startswith("ablate.py: error: --set pretrain.aug.rrc_scale[0]: must be a number, got 'a'")


def test_a_binary_table(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_bytes(bytes(range(256)) * 8)
    line = refused(tmp_path, capsys, "--table", str(tmp_path / "mine.yaml"))
    assert "mine.yaml: not a text file (byte 0x80 at offset 128 is not UTF-8)" in line


def test_a_huge_table_is_refused_at_once(tmp_path, capsys):
    rows = "".join(
        f"  f{i}: {{from: f, mode: mae, set: {{pretrain.epochs: {i % 9 + 1}}}}}\n" for i in range(130_000)
    )
    start = time.perf_counter()
    line = refused(tmp_path, capsys, "--table", table(tmp_path, "rows:\n" + rows))
    assert "MiB; a table or preset file is at most 1 MiB" in line and time.perf_counter() - start < 5
    few = "".join(f"  f{i}: {{from: f}}\n" for i in range(2001))
    line = refused(tmp_path, capsys, "--table", table(tmp_path, "mode: mae\nrows:\n" + few))
    assert "rows: 2001 entries; a file holds at most 2000 here" in line


# ----------------------------------------------------------------------------- messages


def test_a_folder_given_as_a_table(tmp_path, capsys):
    (tmp_path / "t.yaml").mkdir()
    assert "t.yaml is a folder. Give the path of a YAML table file" in refused(
        tmp_path, capsys, "--table", str(tmp_path / "t.yaml")
    )


def test_modalities_as_a_word(tmp_path, capsys):
    line = refused(
        tmp_path, capsys, "--table", table(tmp_path, "rows:\n  f: {mode: mae, modalities: image}\n")
    )
    assert "rows.f.modalities: must be a list [...], got 'image' (text). e.g. modalities: [image]" in line


@pytest.mark.parametrize("factor", ["-1", "0", "{image: -2}"])
def test_a_scale_that_is_not_positive(tmp_path, capsys, factor):
    path = table(tmp_path, f"rows:\n  f: {{mode: mae, scale: {{pretrain.epochs: {factor}}}}}\n")
    assert "give a number > 0 (0.5 halves it, 2 doubles it)" in refused(tmp_path, capsys, "--table", path)


@pytest.mark.parametrize(
    "key, words",
    [("mae.target", "multiplies a number"), ("pretrain.lr", "may be null"),
     ("model.overrides.embed_dim", "model flags are given with model:")],
)  # fmt: skip
def test_scale_on_a_key_without_a_number_to_multiply(tmp_path, capsys, key, words):
    path = table(tmp_path, f"rows:\n  f: {{mode: mae, scale: {{{key}: 2}}}}\n")
    line = refused(tmp_path, capsys, "--table", path, "--preset", "tiny")
    assert f"rows.f.scale.{key}: scale: " in line and words in line


def test_an_inline_row_without_its_table(tmp_path, capsys):
    line = refused(tmp_path, capsys, "--step", "f+conv")
    assert "'f+conv' is an inline row of table 'loo' (ablations/study/tables/loo.yaml)" in line
    assert "--table loo --step f+conv" in line
    line = refused(tmp_path, capsys, "--step", "g")
    assert line.count("mvitv2") == 1 and "--table <file.yaml> --step g" in line


def test_a_typo_inside_set_names_the_file(tmp_path, capsys):
    path = table(tmp_path, "rows:\n  f: {mode: mae, set: {mae.mask_ratoi: 0.5}}\n")
    line = refused(tmp_path, capsys, "--table", path)
    assert f"{path}: rows.f.set.mae.mask_ratoi: unknown key. Did you mean 'mae.mask_ratio'?" in line


def test_model_flags_at_the_top_of_a_table(tmp_path, capsys):
    line = refused(
        tmp_path, capsys, "--table", table(tmp_path, "model: {pool: conv}\nrows: {f: {mode: mae}}\n")
    )
    assert "model: not a key here: model flags belong to a row: rows: {f+conv: {from: f" in line
    assert "Did you mean 'mode'" not in line


def test_valid_lists_hold_only_what_a_user_writes(tmp_path, capsys):
    line = refused(tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", "model.overrides.dropp=0.1")
    assert "Did you mean 'drop_path'?" in line and "mua_lag" not in line and "params_q_pool" not in line
    line = refused(
        tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", "model.overrides.mua_lag=false"
    )
    assert "mua_lag is not a flag" in line
    path = table(tmp_path, "rows:\n  g: {from: f, mode: mae, model: {params_q_pool: 2}}\n")
    assert "params_q_pool is not a flag: the MAE encoder sets it" in refused(
        tmp_path, capsys, "--table", path
    )
    line = refused(tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", "finetune.init_sha=1")
    assert "finetune.init," in line and "init_sha256" not in line  # computed from the file, never set


def test_report_on_a_missing_folder_says_it_once(tmp_path, capsys):
    line = refused(tmp_path, capsys, "--report")
    assert line.count("does not exist") == 1 and "nothing to report" in line


@pytest.mark.parametrize("name", ["imagefolder", "video_folder", "cifar100"])
def test_a_dry_run_checks_the_data_folder(tmp_path, capsys, name):
    sets = [f"data.name={name}", f"data.root={tmp_path / 'nope'}"]
    modality = ["--modality", "video"] if name == "video_folder" else []
    line = refused(
        tmp_path, capsys, "--step", "f", "--preset", "tiny", *modality, "--set", *sets, "--dry-run"
    )
    assert str(tmp_path / "nope") in line


def test_cifar100s_dry_run_shows_the_classes_it_trains(tmp_path, capsys):
    sets = ["data.name=cifar100", f"data.root={tmp_path / 'cifar'}", "data.download=true"]
    assert cli.main(["--step", "f", "--preset", "tiny", "--set", *sets, "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out.split("---")[0])["data"]["num_classes"] == 100
    assert not (tmp_path / "cifar").exists()  # a preview downloads nothing
    line = refused(tmp_path, capsys, "--step", "f", "--preset", "tiny", "--set", *sets, "data.num_classes=10")
    assert "data.num_classes=10, but cifar100 has 100 classes" in line


def test_feature_probe_on_a_supervised_run(tmp_path, capsys):
    from ablations.study.config import preset_config

    cfg = preset_config("tiny", "image") | {"mode": "supervised"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert FP.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "is a supervised run: it has no MAE encoder to probe" in err
        and "pretraining has not finished" not in err
    )


def test_group_and_entry_names_are_folder_names(tmp_path, capsys):
    path = table(tmp_path, 'row: f\nmode: mae\ngroups: {"a/b": {entries: {"..": {}}}}\n')
    line = refused(tmp_path, capsys, "--table", path, "--preset", "tiny")
    assert "groups.a/b.entries...: group and entry names make a folder name" in line
