"""ablate.py --rehearse: every phase of every run of the selection for a few steps, in a throwaway
runs folder, through the command a user types. The tiny preset keeps the default suite fast; the
paper presets rehearse at their real size (B, 224 px, 16-frame clips) on full-resolution folders
the tests write (slow: minutes on a 2-core CPU)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ablations.cli import main as cli
from ablations.train import phases, step_times

REPO = Path(__file__).resolve().parent.parent
TINY = ["--step", "f", "--preset", "tiny", "--set", "data.train_size=64"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a failed rehearsal's kept folder goes here
    return tmp_path / "cache"


def test_a_tiny_rehearsal_passes_every_phase_and_leaves_the_runs_folder_alone(tmp_path, cache, capsys):
    runs = tmp_path / "runs"
    assert cli.main([*TINY, "--runs-dir", str(runs), "--rehearse"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("[rehearse] 1/1 "))
    assert "table1/f/image/tiny" in line and ": passed; pretrain " in line and "; finetune " in line
    assert "s/step at batch 32, " in line  # a CPU preset rehearses its own per-device batch
    assert "| pretrain | 32 (32) |" in out and "Selection: 1/1 runs passed" in out and "device-hours" in out
    assert not runs.exists()  # the user's runs folder is never touched
    kept = json.loads((cache / "step_times.json").read_text())  # for --plan's time estimate
    (device,) = kept
    assert device.startswith("cpu") and len(kept[device]) == 2
    assert cli.main([*TINY, "--dry-run"]) == 0  # the estimate now comes from the measured steps
    assert f"source: rehearsal on {device} (" in capsys.readouterr().out


def test_a_broken_encoder_handoff_is_caught_before_any_real_run(tmp_path, cache, capsys, monkeypatch):
    """The pretrain phase writes an encoder.pth the finetune's classifier cannot load (a block's
    weights missing): the rehearsal fails that run at the finetune's weight loading, in one line."""
    real_save = phases.save_torch_atomic

    def broken(obj, path):
        if Path(path).name == "encoder.pth":
            obj = {k: v for k, v in obj.items() if not k.startswith("blocks.1.")}
        return real_save(obj, path)

    monkeypatch.setattr(phases, "save_torch_atomic", broken)
    runs = tmp_path / "runs"
    assert cli.main([*TINY, "--runs-dir", str(runs), "--rehearse"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("[rehearse] 1/1 "))
    assert "FAILED at finetune: loading the pretrained encoder" in line and "blocks.1." in line
    assert "Selection: 0/1 runs passed" in out and "logs are kept" in out and not runs.exists()
    (kept,) = tmp_path.glob("ablate-rehearsal-*")  # the failed run's log, for the user to read
    assert "Traceback" in next(kept.rglob("rehearsal.log")).read_text()


def test_bad_rehearse_flags_stop_before_any_work(capsys):
    assert cli.main([*TINY, "--rehearse", "--dry-run"]) == 2
    assert "--dry-run: --rehearse runs the selection itself" in capsys.readouterr().err
    assert cli.main([*TINY, "--rehearse", "0"]) == 2


# ---------------------------------------------------------------- the paper presets, at real size


def write_imagefolder(root: Path, classes=("ant", "bee", "cat"), per_class=3) -> None:
    """JPEGs of ImageNet's typical size (resized and cropped to 224 as ImageNet's are)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.jpg")


def write_video_folder(root: Path, classes=("jump", "run", "swim"), per_class=2, frames=72) -> None:
    """Kinetics-like clips: 340x256, 72 frames (a 16 x 4 clip needs 64), H.264 via PyAV."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                with av.open(str(root / split / c / f"{i}.mp4"), "w") as f:
                    s = f.add_stream("libx264", rate=30)
                    s.width, s.height, s.pix_fmt = 340, 256, "yuv420p"
                    base = rng.integers(0, 255, (256, 340 + frames, 3), dtype=np.uint8)
                    for t in range(frames):  # a panning texture
                        frame = np.ascontiguousarray(base[:, t : t + 340])
                        for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                            f.mux(p)
                    for p in s.encode():
                        f.mux(p)


def ablate(*args, timeout: int, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIERA_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "ablate.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.slow  # ~3-4 min on the 2-core CPU (Hiera-B MAE at 224 px, bf16); the tiny test covers the path
@pytest.mark.parametrize(
    "selection, data",
    [
        (["--table", "1", "--step", "f", "--preset", "in1k-b"], write_imagefolder),
        (["--fig", "8", "--step", "f", "--preset", "k400-b"], write_video_folder),
    ],
    ids=["table1-in1k-b-row-f", "fig8-k400-b-row-f"],
)
def test_one_paper_row_rehearses_at_real_size(tmp_path, selection, data):
    data(tmp_path / "data")
    sets = ["--set", f"data.root={tmp_path / 'data'}", "data.num_classes=3"]
    p = ablate(*selection, *sets, "--runs-dir", str(tmp_path / "runs"), "--rehearse", timeout=1500,
               cache=tmp_path / "cache")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert ": passed; " in p.stdout and "Selection: 1/1 runs passed" in p.stdout
    assert not (tmp_path / "runs").exists()
    # the rehearsal ran the real shapes: B at 224 px (16x224x224 clips)
    assert "of 128" in p.stdout or "of 8" in p.stdout or "of 16" in p.stdout or "of 32" in p.stdout


@pytest.mark.slow  # every row: tens of minutes on the 2-core CPU
@pytest.mark.parametrize(
    "selection, data",
    [
        (["--table", "1", "--preset", "in1k-b"], write_imagefolder),
        (["--fig", "8", "--preset", "k400-b"], write_video_folder),
    ],
    ids=["table1-in1k-b", "fig8-k400-b"],
)
def test_whole_paper_tables_rehearse(tmp_path, selection, data):
    data(tmp_path / "data")
    sets = ["--set", f"data.root={tmp_path / 'data'}", "data.num_classes=3"]
    p = ablate(*selection, *sets, "--runs-dir", str(tmp_path / "runs"), "--rehearse", timeout=3 * 3600,
               cache=tmp_path / "cache")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Selection: 7/7 runs passed" in p.stdout


def test_kept_step_times_are_looked_up_by_device_kind(cache):
    cfg = {"model": {"size": "B", "step": "f"}, "data": {"input_size": [224, 224], "num_frames": 16},
           "runtime": {"amp": "bf16"}, "mae": {}}  # fmt: skip
    assert step_times.lookup(cfg, "finetune", "cpu (x86_64, 2 threads)") is None
    step_times.record(cfg, "finetune", "NVIDIA A100-SXM4-80GB", 0.004, 64)
    step_times.record(cfg, "finetune", "cpu (x86_64, 2 threads)", 2.0, 2)
    assert step_times.lookup(cfg, "finetune", "cpu (x86_64, 2 threads)")[1]["s_per_sample"] == 2.0
    device, entry = step_times.lookup(cfg, "finetune", "NVIDIA H100 80GB HBM3")  # not measured there: a GPU's
    assert device == "NVIDIA A100-SXM4-80GB" and entry["batch"] == 64
    assert step_times.lookup(cfg, "pretrain", None) is None


def test_a_rehearsal_under_torchrun_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main([*TINY, "--rehearse"]) == 2
    assert "--rehearse runs in one process" in capsys.readouterr().err
