"""No silent results, through ablate.py with a fake trainer: run identity, values and data checked before
any work, several --set pairs, wall time across resumes, environment faults (CLI and analysis)."""

import json
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from ablations.cli import main as cli
from ablations.store import lock
from ablations.study import runs as R
from tests import test_cli as shared
from tests.test_cli import FakeTrainer, ablate

fake, plotted = shared.fake, shared.plotted  # fixtures: a fake trainer; plots recorded, not drawn (autouse)


def image_folder(root, classes=("ant", "bee"), val_classes=None, n=2, px=32):
    """<root>/{train,val}/<class>/<i>.png, random pixels."""
    rng = np.random.default_rng(0)
    for split, names in (("train", classes), ("val", classes if val_classes is None else val_classes)):
        for c in names:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (px, px, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def folder_sets(root, n_classes=2):
    return ["--set", "data.name=imagefolder", f"data.root={root}", f"data.num_classes={n_classes}"]


# ---------------------------------------------------------------- 1. run identity


def test_other_data_root_is_never_reused(tmp_path, capsys, fake):
    a, b = image_folder(tmp_path / "A"), image_folder(tmp_path / "B")
    assert ablate(tmp_path, "--step", "f", *folder_sets(a)) == 0
    assert ablate(tmp_path, "--step", "f", *folder_sets(b)) == 1  # before: [skip], A's accuracy
    out = capsys.readouterr().out
    assert "[skip]" not in out and "[changed]" in out and "--force" in out
    assert f"data.root: '{a.resolve()}' -> '{b.resolve()}'" in out
    assert len(fake.calls) == 1
    assert ablate(tmp_path, "--step", "f", *folder_sets(b), "--force") == 0 and len(fake.calls) == 2
    (folder,) = (tmp_path / "runs").glob("table1/f/image/*/seed0")
    ident = json.loads((folder / "identity.json").read_text())
    assert ident["config"]["data"]["root"] == str(b.resolve()) and ident["data_files"]["files"] == 8


def test_changed_files_under_the_same_root_are_detected(tmp_path, capsys, fake):
    a = image_folder(tmp_path / "A")
    assert ablate(tmp_path, "--step", "f", *folder_sets(a)) == 0
    Image.new("RGB", (32, 32)).save(a / "train" / "ant" / "new.png")
    assert ablate(tmp_path, "--step", "f", *folder_sets(a)) == 1
    out = capsys.readouterr().out
    assert "[changed]" in out and "data files under data.root: 8 files" in out and "-> 9 files" in out
    assert len(fake.calls) == 1


def test_where_and_how_a_run_trains_keep_its_identity(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--step", "f") == 0
    neutral = ["data.num_workers=2", "runtime.threads=1", "runtime.device=cpu", "runtime.log_every=3",
               "runtime.ckpt_every_steps=7"]  # fmt: skip
    assert ablate(tmp_path, "--step", "f", "--set", *neutral) == 0
    assert "[skip]" in capsys.readouterr().out and len(fake.calls) == 1


def test_a_key_added_later_keeps_older_runs_while_null(tmp_path, capsys, fake):
    """pretrain.train_size came after runs existed: a run recorded without it is still reused
    while it is null, and a value for it is a new run."""
    assert ablate(tmp_path, "--step", "f") == 0
    folder = tmp_path / "runs/table1/f/image/cpu/seed0"
    ident = json.loads((folder / "identity.json").read_text())
    assert "train_size" not in ident["config"]["pretrain"]
    assert ablate(tmp_path, "--step", "f") == 0 and "[skip]" in capsys.readouterr().out
    # a value is another run (a --set variant folder), trained rather than skipped
    assert ablate(tmp_path, "--step", "f", "--set", "pretrain.train_size=4000") == 0
    assert "[train]" in capsys.readouterr().out and len(fake.calls) == 2


def test_a_run_without_identity_json_is_adopted_only_if_its_config_matches(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--step", "f") == 0
    folder = tmp_path / "runs/table1/f/image/cpu/seed0"
    (folder / "identity.json").write_text("{")  # damaged (or a folder from before identity.json)
    assert ablate(tmp_path, "--step", "f") == 0
    out = capsys.readouterr().out
    assert "identity.json unreadable" in out and "rebuilt from config.yaml" in out and "[skip]" in out
    assert json.loads((folder / "identity.json").read_text())["config"]["model"]["step"] == "f"
    (folder / "identity.json").unlink()
    assert ablate(tmp_path, "--step", "f", "--set", "runtime.threads=1") == 0  # neutral: still adopted
    assert "[skip]" in capsys.readouterr().out and len(fake.calls) == 1


def test_unfinished_run_with_another_identity_is_not_resumed(tmp_path, capsys, monkeypatch, fake):
    a, b = image_folder(tmp_path / "A"), image_folder(tmp_path / "B")
    monkeypatch.setattr(R, "run_training", FakeTrainer(fail=True))
    assert ablate(tmp_path, "--step", "f", *folder_sets(a)) == 1
    monkeypatch.setattr(R, "run_training", fake)
    assert ablate(tmp_path, "--step", "f", *folder_sets(b)) == 1
    out = capsys.readouterr().out
    assert "[resume]" not in out and "[changed]" in out and not fake.calls


# ---------------------------------------------------------------- 2. values checked before any work


@pytest.mark.parametrize(
    "sets, words",
    [
        (["pretrain.epochs=-1", "finetune.epochs=-2"], ["pretrain.epochs=-1 must lie in [1, 100000]"]),
        (["finetune.batch_size=0"], ["finetune.batch_size=0 must lie in [1"]),
        (["pretrain.batch_size=-8"], ["pretrain.batch_size=-8"]),
        (["finetune.blr=-0.001"], ["finetune.blr=-0.001 must lie in (0"]),
        (["pretrain.lr=0"], ["pretrain.lr=0 must lie in (0"]),
        (["mae.mask_ratio=0"], ["mae.mask_ratio=0 must lie in (0, 1)"]),
        (["mae.mask_ratio=0.99"], ["keeps 0 of the model's 16 mask units", "[0.0625, 0.9375]"]),
        (
            ["data.input_size=[64, 64]"],
            ["takes 32x32", "model.size cpu-s", "model.overrides.input_size=[64, 64]"],
        ),
        (["data.input_size=[48, 48]"], ["no model size", "model.overrides.input_size=[48, 48]"]),
        (["finetune.warmup_epochs=50"], ["exceeds finetune.epochs"]),
        (["data.num_workers=-1"], ["data.num_workers=-1"]),
        (["runtime.eval_every=0"], ["runtime.eval_every=0"]),
        (["data.num_classes=40"], ["data.num_classes=40 must lie in [2, 10]"]),
        (["data.train_size=10"], ["data.train_size=10 cannot fill one pretrain batch of 64"]),
        (
            ["model.overrides.drop_path=0.3"],
            ["model.overrides.drop_path", "pretrain.drop_path, finetune.drop_path"],
        ),
        (["model.overrides.head_init_scale=0.1"], ["finetune.head_init_scale"]),
        (["finetune.aug.rrc_scale=[0.9, 0.1]"], ["rrc_scale"]),
        (["finetune.aug.randaug=augmix-m5"], ["finetune.aug.randaug", "rand-m9-mstd0.5-inc1"]),
        (["data.input_size=[32, 0]"], ["data.input_size=[32, 0] must be"]),
        (["bench.iters=0"], ["bench.iters=0"]),
        (["bench.processes=0"], ["bench.processes=0 must lie in [1"]),
        (["pretrain.train_size=32"], ["pretrain.train_size=32 cannot fill one pretrain batch of 64"]),
        (["data.name=imagefolder"], ["needs its folder", "--set data.root="]),
        (
            ["data.name=imagefolder", "data.root=/no/such/folder"],
            ["data.root=/no/such/folder does not exist"],
        ),
    ],
)
def test_bad_values_stop_before_any_work(tmp_path, capsys, fake, sets, words):
    assert ablate(tmp_path, "--step", "f", "--set", *sets) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)
    assert not fake.calls and not (tmp_path / "runs").exists()


def test_supervised_phase_values_are_checked(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--step", "c", "--mode", "supervised", "--set", "supervised.epochs=0") == 2
    assert "supervised.epochs=0" in capsys.readouterr().err and not fake.calls


def test_phase_drop_path_reaches_the_model():
    # model.overrides.drop_path is refused (above); the phase's key is the one that takes effect.
    from ablations.study.config import Selection, resolve
    from ablations.train.phases import build_classifier

    (run,) = resolve(Selection(step="f", preset="tiny", sets={"finetune.drop_path": 0.25}))
    model = build_classifier(run.config, run.config["finetune"], 10)
    assert model.cfg.drop_path == 0.25
    assert model.blocks[-1].drop_path.drop_prob == pytest.approx(0.25)


# ---------------------------------------------------------------- 3. data surprises


def test_empty_class_folder_is_an_error(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d")
    (root / "train" / "cat").mkdir()
    assert ablate(tmp_path, "--step", "f", *folder_sets(root, 3)) == 2
    err = capsys.readouterr().err
    assert "hold no images: ['cat']" in err and not fake.calls


def test_val_classes_missing_from_train_are_an_error(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d", val_classes=("ant", "bee", "cow"))
    assert ablate(tmp_path, "--step", "f", *folder_sets(root)) == 2
    assert "val has classes that train/ lacks: ['cow']" in capsys.readouterr().err and not fake.calls


def test_one_class_is_an_error(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d", classes=("ant",))
    assert ablate(tmp_path, "--step", "f", *folder_sets(root, 1)) == 2
    assert "a classifier needs 2 or more" in capsys.readouterr().err and not fake.calls


def test_num_classes_disagreeing_with_folders_is_an_error(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d", classes=("ant", "bee", "cow"))
    assert ablate(tmp_path, "--step", "f", *folder_sets(root, 10)) == 2
    err = capsys.readouterr().err
    assert "data.num_classes=10 but" in err and "--set data.num_classes=3" in err and not fake.calls


def test_resize_and_val_gaps_are_said_once(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d", classes=("ant", "bee", "cow"), val_classes=("ant", "bee"), px=64)
    assert ablate(tmp_path, "--step", "f", *folder_sets(root, 3), "--seeds", "2") == 0
    out = capsys.readouterr().out
    assert out.count("are 64x64 px") == 1 and "resized and cropped to 32x32" in out
    assert out.count("val has no images for 1 of 3 classes (e.g. ['cow'])") == 1
    assert len(fake.calls) == 2


# ---------------------------------------------------------------- 6. small ones


def test_several_pairs_after_one_set(tmp_path, capsys, fake):
    args = ["--step", "f", "--dry-run", "--set", "pretrain.epochs=2", "finetune.epochs=3"]
    assert ablate(tmp_path, *args, "--set", "runtime.ckpt_every_steps=5") == 0
    (cfg,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert cfg["pretrain"]["epochs"] == 2 and cfg["finetune"]["epochs"] == 3
    assert cfg["runtime"]["ckpt_every_steps"] == 5


def test_wall_time_sums_every_segment(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", FakeTrainer(fail=True, delay=0.4))
    assert ablate(tmp_path, "--step", "f") == 1
    monkeypatch.setattr(R, "run_training", FakeTrainer(delay=0.4))
    assert ablate(tmp_path, "--step", "f") == 0
    metrics = json.loads((tmp_path / "runs/table1/f/image/cpu/seed0/metrics.json").read_text())
    assert metrics["wall_segments"] == 2 and metrics["wall_time_s"] >= 0.8


def test_a_killed_segment_ends_at_its_last_write(tmp_path):
    folder = tmp_path / "run"
    (folder / "finetune").mkdir(parents=True)
    R.record_wall(folder, [[100.0, None]])  # as left by kill -9
    log = folder / "finetune" / "log.jsonl"
    log.write_text("{}\n")
    os.utime(log, (160.0, 160.0))
    os.utime(folder / R.WALL, (150.0, 150.0))
    assert R.wall_segments(folder) == [[100.0, 160.0]]


# ---------------------------------------------------------------- 5. environment faults


def test_read_only_runs_folder_gives_one_line(tmp_path, capsys, monkeypatch, fake):
    def read_only(path, *a, **k):  # what open() says on a read-only filesystem (root ignores chmod)
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(lock, "open", read_only, raising=False)
    assert ablate(tmp_path, "--step", "f") == 1
    out, err = capsys.readouterr()
    assert "[failed] table1/f/image/cpu/seed0: [Errno 30] Read-only file system" in out
    assert "--runs-dir" in out and "Traceback" not in out + err and not fake.calls


def test_report_on_a_full_disk_gives_one_line_and_no_leftovers(tmp_path, capsys, monkeypatch, fake):
    from ablations.store import atomic

    assert ablate(tmp_path, "--step", "f") == 0
    capsys.readouterr()

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    assert cli.main(["--report", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "could not write" in err and "No space left on device" in err and "MiB free there" in err
    assert not [p for p in (tmp_path / "runs").rglob("*") if ".tmp" in p.name]


def test_analysis_on_a_missing_folder_says_so(tmp_path, capsys):
    from analysis.__main__ import main

    assert main(["--runs-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "nope").exists()


def test_fingerprint_follows_linked_folders_once(tmp_path):
    from ablations.study.identity import files_fingerprint

    root = image_folder(tmp_path / "d")
    (root / "train" / "loop").symlink_to(root / "train")  # a link cycle must not recurse forever
    (root / "val" / "gone.png").symlink_to(tmp_path / "missing.png")  # a dangling link counts
    fp = files_fingerprint(str(root))
    assert fp["files"] == 9 and fp == files_fingerprint.__wrapped__(str(root))


def test_lock_module_imports_without_fcntl(tmp_path, monkeypatch):
    # Windows has no fcntl: ablations/store/lock.py falls back to msvcrt (faked here: one holder per file).
    import importlib.util
    import sys
    import types

    held = set()

    def locking(fd, mode, nbytes):
        key = os.fstat(fd).st_ino
        if mode == fake.LK_NBLCK:
            if key in held:
                raise OSError(36, "Resource deadlock avoided")
            held.add(key)
        else:
            held.discard(key)

    fake = types.SimpleNamespace(LK_NBLCK=2, LK_UNLCK=0, locking=locking)
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl -> ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    spec = importlib.util.spec_from_file_location("lock_on_windows", lock.__file__)  # a copy, not ours
    win = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(win)
    assert win.fcntl is None
    with win.exclusive(tmp_path / "run" / ".lock"):
        with pytest.raises(win.RunLocked), win.exclusive(tmp_path / "run" / ".lock"):
            pass
    with win.exclusive(tmp_path / "run" / ".lock"):  # released
        pass
