"""Hostile files through ablate.py (preset tiny, seconds): data and run files that lie. Links in
folder datasets, signals in every phase, damaged or foreign side files, --set values that are not
YAML, exact logs after a resume, and the smaller points (locks, variants, orphan temporary files,
read-only disks, --devices 0)."""

import fcntl
import json
import os
import signal
import time

import numpy as np
import pytest
import torch
import yaml

from ablations.cli import main as cli
from ablations.store import lock
from ablations.store.predictions import save_predictions
from ablations.study import runs as R
from tests import test_cli as shared
from tests.test_data_files import _write_video_tree
from tests.test_no_silent_results import folder_sets, image_folder

fake, plotted = shared.fake, shared.plotted  # fixtures: a fake trainer; plots recorded, not drawn
TINY = ["--preset", "tiny", "--set", "runtime.threads=1", "runtime.tensorboard=false"]


def ablate(tmp_path, *args):
    return cli.main([*args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])


def tiny(tmp_path, *args):
    return ablate(tmp_path, "--step", "f", *TINY, *args)


def run_folder(tmp_path, variant="tiny"):
    return tmp_path / "runs" / f"table1/f/image/{variant}/seed0"


# ---------------------------------------------------------------- 1. links in folder datasets


@pytest.mark.parametrize(
    "name, target",
    [("up", ".."), ("loop", "."), ("cats", "../cat"), ("root", "../../..")],
    ids=["parent", "loop", "other-class", "root"],
)
def test_a_link_to_a_folder_in_a_class_is_refused_before_any_work(tmp_path, capsys, fake, name, target):
    root = image_folder(tmp_path / "d", classes=("cat", "dog", "fish"), n=2)
    link = root / "train" / "dog" / name
    link.symlink_to(target)  # before: every cat and fish image also a "dog" (or an endless walk)
    assert tiny(tmp_path, *folder_sets(root, 3)) == 2
    err = capsys.readouterr().err
    assert f"{link} is a link to a folder" in err and "rm " in err and len(err.strip().splitlines()) == 1
    assert not fake.calls


def test_a_link_to_a_file_is_followed_and_counts_are_printed(tmp_path, capsys, one_thread):
    root = image_folder(tmp_path / "d", n=16)
    (root / "train" / "bee" / "extra.png").symlink_to(root / "train" / "ant" / "0.png")
    assert tiny(tmp_path, *folder_sets(root), "--mode", "supervised") == 0
    out = capsys.readouterr().out
    assert f"[data] ImageFolder {root}/train: 33 images in 2 classes (ant 16, bee 17)" in out
    assert f"[data] ImageFolder {root}/val: 32 images in 2 classes (ant 16, bee 16)" in out


def test_a_linked_frame_folder_in_a_video_class_is_refused(tmp_path, capsys, fake):
    root = tmp_path / "v"
    _write_video_tree(root, frames_folders=True)
    (root / "train" / "jump" / "clip1").symlink_to(root / "train" / "run" / "clip0")
    args = ["--modality", "video", "--set", "data.name=video_folder", f"data.root={root}"]
    args += ["data.num_classes=2"]
    assert tiny(tmp_path, *args) == 2
    assert f"{root}/train/jump/clip1 is a link to a folder" in capsys.readouterr().err
    assert not fake.calls


def test_a_class_folder_linked_to_its_split_is_refused(tmp_path, capsys, fake):
    root = image_folder(tmp_path / "d")
    (root / "train" / "zz").symlink_to(root / "train")
    assert tiny(tmp_path, *folder_sets(root, 3)) == 2
    assert f"{root}/train/zz is a link to a folder" in capsys.readouterr().err and not fake.calls


# ---------------------------------------------------------------- 2. signals in every phase


@pytest.fixture
def sigterm_recorded():
    """SIGTERM recorded instead of ending pytest (pytest would otherwise end)."""
    seen = []
    before = signal.signal(signal.SIGTERM, lambda *a: seen.append(1))
    yield seen
    signal.signal(signal.SIGTERM, before)


def busy(seconds: float) -> None:
    """A scan or measurement in pure Python: signal handlers run between its bytecodes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_sigterm_during_the_data_scan_stops_at_once(tmp_path, capsys, monkeypatch, fake, sigterm_recorded):
    def endless_scan(runs):  # a data check that would take long (a huge or looping folder)
        os.kill(os.getpid(), signal.SIGTERM)
        busy(3.0)
        raise AssertionError("the scan went on after SIGTERM")

    monkeypatch.setattr(cli, "check_data_once", endless_scan)
    assert tiny(tmp_path) == 75
    err = capsys.readouterr().err
    assert "[stopped] by SIGTERM" in err and "Traceback" not in err and not fake.calls


def test_sigint_while_metrics_are_measured_stops_with_130(tmp_path, capsys, monkeypatch, fake):
    def measure(cfg, attn_backend="math"):
        os.kill(os.getpid(), signal.SIGINT)
        busy(2.0)
        return shared.fake_measure(cfg, attn_backend)

    monkeypatch.setattr(R, "measure_model", measure)
    assert tiny(tmp_path) == 130  # before: swallowed, rc 0
    assert "[stopped]" in capsys.readouterr().out
    assert not (run_folder(tmp_path) / "metrics.json").exists()
    monkeypatch.setattr(R, "measure_model", shared.fake_measure)
    assert tiny(tmp_path) == 0 and (run_folder(tmp_path) / "metrics.json").exists()


def test_ctrl_c_while_the_report_is_written_gives_130_and_no_traceback(tmp_path, capsys, monkeypatch, fake):
    import analysis.report as report

    assert tiny(tmp_path) == 0
    real = report.load_runs

    def interrupted(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        busy(2.0)
        return real(*a, **k)

    monkeypatch.setattr(report, "load_runs", interrupted)
    capsys.readouterr()
    assert cli.main(["--report", "--runs-dir", str(tmp_path / "runs")]) == 130  # before: KeyboardInterrupt
    err = capsys.readouterr().err
    assert "[stopped] by SIGINT" in err and "Traceback" not in err


def test_a_second_signal_in_a_training_step_stops_at_once(tmp_path, capsys, monkeypatch, one_thread):
    from ablations.train import loop

    sent = []
    real = loop.tblog.write_record

    def log_record(tb, record):  # inside the first training step: SIGTERM, then Ctrl-C
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            busy(2.0)
        real(tb, record)

    monkeypatch.setattr(loop.tblog, "write_record", log_record)
    assert tiny(tmp_path) == 130  # before: the Ctrl-C was ignored, the step finished (75)
    out = capsys.readouterr().out
    assert "stopped at once by a second signal (SIGINT)" in out
    assert not (run_folder(tmp_path) / "pretrain" / "checkpoint-last.pth").exists()


# ---------------------------------------------------------------- 3. damaged or foreign files


def stray(tmp_path, name: str, metrics, config) -> None:
    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def test_damaged_side_files_are_one_line_each_and_a_damaged_row(tmp_path, capsys, fake):
    assert tiny(tmp_path) == 0
    folder = run_folder(tmp_path)
    pred = folder / "finetune" / "predictions.npz"
    save_predictions({"top5": np.zeros((4, 5), int), "label": np.zeros(4, int)}, pred)
    pred.write_bytes(pred.read_bytes()[:40])  # truncated: BadZipFile in every command before
    good = yaml.safe_load((folder / "config.yaml").read_text())
    meta = json.loads((folder / "metrics.json").read_text())
    stray(tmp_path, "table1/e/image/tiny/seed0", [], good)  # metrics.json `[]`
    stray(tmp_path, "table1/d/image/tiny/seed0", meta, {"mode": "mae"})  # config.yaml without model
    capsys.readouterr()

    assert cli.main(["--report", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    damaged = [ln for ln in out.splitlines() if ln.startswith("[damaged]")]
    assert len(damaged) == 3, out
    assert any(str(pred) in ln and "BadZipFile" in ln for ln in damaged)
    assert any("table1/e/image/tiny/seed0/metrics.json" in ln for ln in damaged)
    assert any("table1/d/image/tiny/seed0/config.yaml" in ln and "no model" in ln for ln in damaged)
    index = (tmp_path / "runs" / "report" / "index.md").read_text()
    assert "| `table1/e/image/tiny/seed0` | damaged:" in index and "| `table1/d/image/tiny/seed0` |" in index
    assert "1 finished runs" in index

    assert tiny(tmp_path) == 0  # a training command on the same runs dir: the run is skipped
    assert "[skip]" in capsys.readouterr().out


def test_status_marks_a_damaged_folder(tmp_path, capsys, fake):
    folder = run_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "identity.json").write_text("[]")
    (folder / "config.yaml").write_text("mode: mae\n")  # no data: before, a KeyError in --status
    (folder / "pretrain").mkdir()
    (folder / "pretrain" / "log.jsonl").write_text("[]\n")
    (folder / "slurm").mkdir()
    (folder / "slurm" / "job.json").write_text("[1, 2]")
    assert tiny(tmp_path, "--status") == 0
    out = capsys.readouterr().out
    assert "damaged" in out and "what this folder trained is unknown" in out and "--force" in out
    assert tiny(tmp_path) == 1 and "[changed]" in capsys.readouterr().out  # not reused, not a crash


def test_a_damaged_encoder_redoes_pretraining(tmp_path, capsys, one_thread):
    assert tiny(tmp_path) == 0
    folder = run_folder(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    encoder = folder / "pretrain" / "encoder.pth"
    for p in [folder / "metrics.json", *(folder / "finetune").iterdir()]:
        p.unlink()
    encoder.write_bytes(encoder.read_bytes()[:500])
    capsys.readouterr()
    assert tiny(tmp_path) == 0  # before: a traceback without the file's name, and rc 1 forever
    out = capsys.readouterr().out
    assert f"[repair] {encoder} is unreadable" in out and "redoing the pretrain phase" in out
    assert f"{folder / 'pretrain' / 'done.json'} removed" in out
    torch.load(encoder, weights_only=True)
    assert json.loads((folder / "metrics.json").read_text())["top1"] == metrics["top1"]


# ---------------------------------------------------------------- 4. --set values that are not YAML


@pytest.mark.parametrize(
    "value, words",
    [("[1,", "expected the node content"),
     ("!!python/object:os.system x", "could not determine a constructor"),
     ("&a [*a]", "refers to itself")],
    ids=["unclosed", "tag", "circular"],
)  # fmt: skip
def test_a_set_value_that_is_not_yaml_is_refused(tmp_path, capsys, fake, value, words):
    assert tiny(tmp_path, "--set", f"pretrain.blr={value}") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pretrain.blr" in err and words in err, err
    assert not fake.calls and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- 5. exact logs after a resume


def test_a_phase_killed_before_its_first_checkpoint_restarts_its_log(tmp_path, monkeypatch, one_thread):
    from ablations.train import loop

    assert ablate(tmp_path / "straight", "--step", "f", *TINY) == 0
    straight = (run_folder(tmp_path / "straight") / "pretrain" / "log.jsonl").read_text().splitlines()

    def killed(*a, **k):  # the first checkpoint never lands (kill -9 before it)
        raise KeyboardInterrupt("killed")

    real = loop.save_checkpoint
    monkeypatch.setattr(loop, "save_checkpoint", killed)
    assert tiny(tmp_path) == 130
    log = run_folder(tmp_path) / "pretrain" / "log.jsonl"
    assert log.read_text().strip()  # the discarded attempt logged its steps
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert tiny(tmp_path) == 0
    lines = log.read_text().splitlines()
    key = [(json.loads(s)["epoch"], json.loads(s)["step"], json.loads(s).get("loss")) for s in straight]
    assert [(json.loads(s)["epoch"], json.loads(s)["step"], json.loads(s).get("loss")) for s in lines] == key


# ---------------------------------------------------------------- 6. smaller points


def test_a_locked_run_exits_non_zero_naming_the_holder(tmp_path, capsys, fake):
    folder = run_folder(tmp_path)
    folder.mkdir(parents=True)
    holder = {"host": "this-host", "pid": 4242, "launcher": None, "job_id": None, "since": "now"}
    with open(folder / R.LOCK, "w") as f:
        f.write(json.dumps(holder))
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert tiny(tmp_path) == 1  # before: 0, as if every run were done
    out = capsys.readouterr().out
    assert "[busy]" in out and "pid 4242 on this-host" in out and not fake.calls


def test_setting_a_key_to_its_preset_value_is_the_same_variant(tmp_path, capsys, fake):
    assert tiny(tmp_path) == 0
    assert tiny(tmp_path, "--set", "pretrain.epochs=1", "mae.mask_ratio=0.6") == 0
    assert "[skip]" in capsys.readouterr().out and len(fake.calls) == 1
    assert [p.name for p in (tmp_path / "runs/table1/f/image").iterdir()] == ["tiny"]
    assert tiny(tmp_path, "--set", "pretrain.epochs=2") == 0  # a real change: its own folder, as before
    assert (tmp_path / "runs/table1/f/image/tiny+9f0340").is_dir() and len(fake.calls) == 2


def test_orphan_temporary_files_are_removed_when_the_run_is_opened(tmp_path, capsys, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", shared.FakeTrainer(fail=True))
    assert tiny(tmp_path) == 1  # an unfinished run, killed while it saved
    monkeypatch.setattr(R, "run_training", fake)
    folder = run_folder(tmp_path)
    (folder / "pretrain").mkdir(parents=True)
    orphan = folder / "pretrain" / ".checkpoint-last.999999.tmp.pth"
    orphan.write_bytes(b"PK half a checkpoint")
    assert tiny(tmp_path) == 0
    assert not orphan.exists() and "removed 1 temporary file" in capsys.readouterr().out


def test_a_finished_run_on_a_read_only_disk_is_reported_finished(tmp_path, capsys, monkeypatch, fake):
    assert tiny(tmp_path) == 0

    def read_only(path, *a, **k):  # what open() says on a read-only filesystem (root ignores chmod)
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(lock, "open", read_only, raising=False)
    capsys.readouterr()
    assert tiny(tmp_path) == 0  # before: [failed], rc 1
    out = capsys.readouterr().out
    assert "[skip] table1/f/image/tiny/seed0: finished" in out and "[failed]" not in out


def test_devices_zero_is_refused(tmp_path, capsys):
    assert ablate(tmp_path, "--step", "f", "--plan", "--devices", "0") == 2  # before: planned for 8
    assert "--devices 0" in capsys.readouterr().err
