"""Damaged run files with the real trainer (preset tiny, seconds): damaged files name themselves
and are repaired or worked around, a full disk leaves no temporary files and keeps finished
phases, and an unreadable image names its file (or is skipped with data.skip_corrupt)."""

import json

import pytest
import torch

from ablations.cli import main as cli
from tests import test_cli as shared
from tests.test_no_silent_results import folder_sets, image_folder

plotted = shared.plotted  # plots recorded, not drawn (autouse)
TINY = ["--preset", "tiny", "--set", "runtime.threads=1", "runtime.ckpt_every_steps=1"]


def ablate(tmp_path, *args):
    return cli.main(["--step", "f", *TINY, *args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])


def run_folder(tmp_path):
    (folder,) = (tmp_path / "runs").glob("table1/f/image/*/seed0")
    return folder


def test_damaged_files_are_named_and_repaired(tmp_path, capsys):
    assert ablate(tmp_path) == 0
    folder = run_folder(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    pretrain_done = (folder / "pretrain" / "done.json").read_bytes()
    logs = {p: (folder / p / "log.jsonl").read_text() for p in ("pretrain", "finetune")}
    capsys.readouterr()

    # A corrupt metrics.json is rebuilt from the phases' done.json: nothing is retrained.
    (folder / "metrics.json").write_text('{"top1": 4')
    assert ablate(tmp_path) == 0
    out = capsys.readouterr().out
    assert (
        f"{folder / 'metrics.json'} unreadable" in out and "rebuilding it from the phases' done.json" in out
    )
    assert json.loads((folder / "metrics.json").read_text())["top1"] == metrics["top1"]
    assert {p: (folder / p / "log.jsonl").read_text() for p in logs} == logs

    # A corrupt config.yaml of a run whose identity matches is rewritten; the run is still finished.
    (folder / "config.yaml").write_text("mode: [unclosed")
    assert ablate(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"[repair] {folder / 'config.yaml'} was unreadable" in out and "[skip]" in out

    # A truncated checkpoint-last.pth: the previous checkpoint takes over, and the phase finishes.
    ckpt = folder / "finetune" / "checkpoint-last.pth"
    for name in ("metrics.json", "finetune/done.json"):
        (folder / name).unlink()
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert ablate(tmp_path) == 0
    out = capsys.readouterr().out
    assert (
        f"{ckpt} is unreadable" in out and "resuming from the previous checkpoint checkpoint-prev.pth" in out
    )
    assert (folder / "metrics.json").exists() and (
        folder / "pretrain" / "done.json"
    ).read_bytes() == pretrain_done
    torch.load(ckpt, weights_only=True)  # rewritten whole

    # Both damaged: the message names them and what to do; the finished pretrain phase is kept.
    for name in ("metrics.json", "finetune/done.json"):
        (folder / name).unlink()
    for p in (ckpt, folder / "finetune" / "checkpoint-prev.pth"):
        p.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert ablate(tmp_path) == 1
    out = capsys.readouterr().out
    assert "[failed]" in out and "checkpoint-prev.pth is unreadable" in out
    assert f"Delete {folder / 'finetune'} to restart this phase" in out and "Traceback" not in out
    assert (folder / "pretrain" / "done.json").read_bytes() == pretrain_done


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), RuntimeError("enforce fail at inline_container.cc:672")]
)
def test_full_disk_in_a_later_phase_keeps_the_earlier_one(tmp_path, capsys, monkeypatch, error):
    real_save = torch.save

    def save(obj, path, *a, **k):  # the disk fills up while finetuning writes its checkpoint
        if "finetune" in str(path):
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04partial")
            raise error
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    assert ablate(tmp_path) == 1
    out = capsys.readouterr().out
    folder = run_folder(tmp_path)
    line = [ln for ln in out.splitlines() if ln.startswith("[failed]")]
    assert len(line) == 1 and "could not write" in line[0] and "checkpoint-last.pth" in line[0]
    assert "MiB free there" in line[0] and "Traceback" not in out
    assert not [p for p in folder.rglob("*") if ".tmp" in p.name]  # no orphan temporary file
    assert (folder / "pretrain" / "done.json").exists() and not (folder / "metrics.json").exists()

    monkeypatch.setattr(torch, "save", real_save)  # space freed: resumes after pretraining
    assert ablate(tmp_path) == 0
    assert "[resume]" in capsys.readouterr().out and (folder / "metrics.json").exists()


def test_unreadable_image_names_its_file_or_is_skipped(tmp_path, capsys):
    root = image_folder(tmp_path / "d", n=16)
    bad = root / "train" / "bee" / "3.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = [*folder_sets(root), "--mode", "supervised"]
    assert ablate(tmp_path, *args) == 1
    out = capsys.readouterr().out
    assert f"cannot read image {bad}" in out and "data.skip_corrupt=true" in out

    assert ablate(tmp_path, *args, "--set", "data.skip_corrupt=true") == 0
    out = capsys.readouterr().out
    assert f"skipped unreadable image {bad}" in out and "skipped so far" in out
