"""ablate.py end to end with a fake trainer: what runs, what is skipped, locks, atomic metrics."""

import fcntl
import json
import threading
import time

import pytest
import yaml

from ablations.cli import main as cli
from ablations.study import runs as R

ROWS = ["mvitv2", "a", "b", "c", "d", "e", "f"]


class FakeTrainer:
    """Stands in for ablations.train.run_training: writes only inside run_dir, returns metrics."""

    def __init__(self, fail: bool = False, delay: float = 0.0):
        self.calls, self.fail, self.delay = [], fail, delay

    def __call__(self, cfg, run_dir, progress=True):
        self.calls.append(str(run_dir))
        phase = "supervised" if cfg["mode"] == "supervised" else "finetune"
        (run_dir / phase).mkdir(parents=True, exist_ok=True)
        (run_dir / phase / "log.jsonl").write_text('{"epoch": 0}\n')
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        row = ROWS.index(cfg["model"]["step"])
        top1 = 50.0 + row + (5 if cfg["mode"] == "mae" else 0) + cfg["seed"] + 10 * cfg["mae"]["mask_ratio"]
        return {"top1": top1, "top5": 90.0, "train_time_s": 1.5}


def fake_measure(cfg, attn_backend="math"):
    speed = 100.0 + 10 * ROWS.index(cfg["model"]["step"]) + (5 if attn_backend == "auto" else 0)
    by_dtype = {"float32": speed}
    out = {"params": 123456, "macs": 7_000_000, "throughput": speed, "throughput_by_dtype": by_dtype}
    if cfg["model"]["step"] == "mvitv2":
        out.update(params_hiera_conventions=120000, macs_hiera_conventions=6_500_000)
    return out


def fake_speeds(configs, base="mvitv2", attn_backend="math"):
    """Stands in for analysis.speed_table.table_speeds (side-by-side timing of real models)."""
    speed = {row: fake_measure(cfg, attn_backend)["throughput"] for row, cfg in configs.items()}
    rows = {}
    for row, v in speed.items():
        r = v / speed.get(base, float("nan"))
        rows[row] = {
            "throughput": v,
            "per_round": [v],
            "ratio": r,
            "ratio_low": 0.9 * r,
            "ratio_high": 1.1 * r,
        }
    settings = {"batch_sizes": [1], "warmup": 1, "iters": 1, "rounds": 1, "dtype": "float32", "device": "cpu"}
    return {"settings": settings, "device_name": "fake cpu", "threads": 1, "date": "today", "rows": rows}


PLOTS = ("table1_accuracy", "table1_speed", "fig8", "acc_vs_speed", "differences")


@pytest.fixture(autouse=True)
def plotted(monkeypatch):
    """Records plot calls instead of drawing (slow on 2 cores; tests/test_analysis.py draws them),
    and fakes the side-by-side timing (real models; tests/test_speed_table.py times them)."""
    calls = []
    for name in PLOTS:
        monkeypatch.setattr(f"analysis.plots.{name}", lambda *a, name=name, **k: calls.append(name))
    monkeypatch.setattr("analysis.table3_plot.table3", lambda *a, **k: calls.append("table3"))
    monkeypatch.setattr("analysis.speed_table.table_speeds", fake_speeds)
    return calls


@pytest.fixture
def fake(monkeypatch):
    trainer = FakeTrainer()
    monkeypatch.setattr(R, "run_training", trainer)
    monkeypatch.setattr(R, "measure_model", fake_measure)
    return trainer


def ablate(tmp_path, *args):
    return cli.main([*args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])


def test_list(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for word in ["mvitv2", "mask unit attn", "table3", "fig8", "in1k-b", "k400-l", "gpu-cifar", "tiny"]:
        assert word in out


def test_dry_run_prints_yaml_and_does_nothing(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--table", "1", "--dry-run", "--set", "pretrain.epochs=3") == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert len(docs) == 7 and {d["model"]["step"] for d in docs} == {"mvitv2", "a", "b", "c", "d", "e", "f"}
    assert all(d["pretrain"]["epochs"] == 3 for d in docs)
    assert not (tmp_path / "runs").exists() and not fake.calls


def test_dry_run_shows_how_the_global_batch_splits(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")  # as under torchrun --nproc_per_node 8 (no process group needed)
    # the preset's hand-sized cap, given explicitly (else the memory plan previews a GPU: test_autoplan.py)
    cap = ("--set", "runtime.max_batch_per_device=128")
    assert ablate(tmp_path, "--step", "f", "--preset", "in1k-b", *cap, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "# pretrain: global batch 4096 = 128 per device x 4 accumulation x 8 processes" in out
    assert "# finetune: global batch 1024 = 128 per device x 1 accumulation x 8 processes" in out


def test_a_batch_that_does_not_split_is_refused_before_any_work(tmp_path, capsys, fake, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert ablate(tmp_path, "--step", "f", "--preset", "tiny") == 2
    err = capsys.readouterr().err
    assert "global batch 32 does not split evenly over 3 processes" in err and "batch_size=" in err
    assert not fake.calls and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--step", "f", "--set", "mae.mask_ratoi=0.5"], ["mae.mask_ratio", "mae.target"]),
        (["--step", "z"], ["Unknown row 'z'", "mvitv2, a, b"]),
        (["--step", "f", "--preset", "gpu"], ["Unknown preset", "gpu-cifar"]),
        (["--table", "2"], ["--table 1, --table 3, --fig 8"]),
        (["--fig", "3"], ["Valid: 8"]),
        (["--step", "f", "--set", "mae.target=pix"], ["Did you mean 'pixel'"]),
        (["--step", "f", "--set", "novalue"], ["expected key=value"]),
        (["--step", "f", "--preset", "in1k-b"], ["data.root="]),
    ],
)
def test_errors_come_before_any_work(tmp_path, capsys, fake, args, words):
    assert ablate(tmp_path, *args) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not fake.calls and not (tmp_path / "runs").exists()


def test_train_skip_rerun_identical_and_force(tmp_path, capsys, fake, plotted):
    assert ablate(tmp_path, "--step", "f") == 0
    folder = tmp_path / "runs" / "table1/f/image/cpu/seed0"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["top1"] == pytest.approx(67.0) and metrics["params"] == 123456
    assert metrics["run"]["name"] == "table1/f/image/cpu/seed0"
    assert {"git_commit", "device", "torch", "timm"} <= set(metrics["env"])
    assert yaml.safe_load((folder / "config.yaml").read_text())["model"]["step"] == "f"
    out = capsys.readouterr().out
    assert "| f | f. replace KV pooling" in out and "| 67.00 | 85.6 |" in out
    report = tmp_path / "runs" / "report" / "cpu"
    before = {p.name: p.read_bytes() for p in report.glob("*.[mc]*[dv]")}
    assert {"table1.md", "table1.csv"} <= set(before)  # Table 1's files only: its run is Table 1's
    assert not {n for n in before if n.startswith(("table3", "fig8"))}
    assert set(plotted) == {"table1_accuracy", "table1_speed", "acc_vs_speed", "differences"}

    assert ablate(tmp_path, "--step", "f") == 0  # finished: skipped, tables byte-identical
    assert len(fake.calls) == 1 and "[skip]" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in report.glob("*.[mc]*[dv]")} == before

    assert ablate(tmp_path, "--step", "f", "--force") == 0
    assert len(fake.calls) == 2 and (folder / "metrics.json").exists()


def test_interrupted_run_resumes(tmp_path, capsys, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", FakeTrainer(fail=True))
    assert ablate(tmp_path, "--step", "f") == 1
    folder = tmp_path / "runs" / "table1/f/image/cpu/seed0"
    assert (folder / "config.yaml").exists() and (folder / "finetune" / "log.jsonl").exists()
    assert not (folder / "metrics.json").exists()
    assert not list(folder.glob(".*.tmp")) and "[failed]" in capsys.readouterr().out
    monkeypatch.setattr(R, "run_training", fake)
    assert ablate(tmp_path, "--step", "f") == 0
    assert "[resume]" in capsys.readouterr().out and (folder / "metrics.json").exists()


def test_metrics_written_atomically(tmp_path, monkeypatch, fake):
    from ablations.store import atomic

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(atomic.WriteFailed, match=r"could not write .*metrics.json: No space left on device"):
        atomic.write_atomic(tmp_path / "metrics.json", "{}")
    assert list(tmp_path.iterdir()) == []  # neither metrics.json nor a temporary file


def test_changed_config_is_not_overwritten(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--step", "a") == 0
    folder = tmp_path / "runs" / "table1/a/image/cpu/seed0"
    ident = json.loads((folder / "identity.json").read_text())
    preset_epochs = ident["config"]["pretrain"]["epochs"]
    ident["config"]["pretrain"]["epochs"] = 999  # as if the preset had been edited since
    (folder / "identity.json").write_text(json.dumps(ident))
    assert ablate(tmp_path, "--step", "a") == 1
    out = capsys.readouterr().out
    assert "[changed]" in out and f"pretrain.epochs: 999 -> {preset_epochs}" in out and "--force" in out
    assert len(fake.calls) == 1
    assert ablate(tmp_path, "--step", "a", "--force") == 0 and len(fake.calls) == 2


def test_lock_held_elsewhere_skips_the_run(tmp_path, capsys, fake):
    folder = tmp_path / "runs" / "table1/f/image/cpu/seed0"
    folder.mkdir(parents=True)
    with open(folder / R.LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert ablate(tmp_path, "--step", "f") == 1  # not done: 0 would say every run is finished
    assert "being trained by another process" in capsys.readouterr().out
    assert not fake.calls and not (folder / "metrics.json").exists()


def test_concurrent_invocations_train_each_run_once(tmp_path, monkeypatch):
    trainer = FakeTrainer(delay=0.5)
    monkeypatch.setattr(R, "run_training", trainer)
    monkeypatch.setattr(R, "measure_model", fake_measure)
    from ablations.study.config import Selection, resolve

    (run,) = resolve(Selection(step="f"))
    results = []

    def invocation():
        results.append(R.execute(run, tmp_path, log=lambda m: None)[0])

    threads = [threading.Thread(target=invocation) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["locked", "trained"] and len(trainer.calls) == 1
    assert json.loads((tmp_path / run.name / "metrics.json").read_text())["top1"] == pytest.approx(67.0)


def test_seeds_mean_and_std(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--step", "f", "--seeds", "3") == 0
    assert len(fake.calls) == 3
    out = capsys.readouterr().out
    assert "| 68.00 ± 1.00 |" in out  # seeds 0, 1, 2 -> 67, 68, 69
    csv = (tmp_path / "runs/report/cpu/table1.csv").read_text()
    assert "68.0000,1.0000,3" in csv


def test_table_runs_every_row_and_bench(tmp_path, capsys, fake):
    assert ablate(tmp_path, "--table", "1") == 0
    assert len(fake.calls) == 7
    out = capsys.readouterr().out
    assert "| 1.60x [1.44-1.76] |" in out  # row f: 160 / 100 im/s against mvitv2, side by side
    assert ablate(tmp_path, "--fig", "8") == 0
    assert len(fake.calls) == 13  # mvitv2 is shared with Table 1
    assert ablate(tmp_path, "--table", "1", "--bench") == 0
    # ours 160 / 100 im/s; the paper 531.4 / 219.8 (Hiera-L vs MViTv2-L)
    out = capsys.readouterr().out
    assert "| 160.0 | 1.60x [1.44-1.76] | 2.42x |\n" in out.split("| f | ")[-1]
    assert "Timed side by side on fake cpu" in out and "attention backend: math" in out
    # row a's MAC change: the convention switch gets its own line between mvitv2 and a
    line = next(ln for ln in out.splitlines() if ln.startswith("| mvitv2 with Hiera conventions (mvitv2) |"))
    assert line.endswith("| – | – | – |")  # MACs and params only
    assert ablate(tmp_path, "--step", "f", "--bench", "--attn-backend", "both") == 0
    row = "| 160.0 | – | 165.0 | – | 2.42x |\n"  # row f alone: no mvitv2 to divide by
    assert row in capsys.readouterr().out.split("| f | ")[-1]
    assert ablate(tmp_path, "--step", "f", "--attn-backend", "auto") == 2
    assert "--attn-backend applies to --bench only" in capsys.readouterr().err
    assert cli.main(["--report", "--runs-dir", str(tmp_path / "runs")]) == 0


def test_ctrl_c_stops_with_a_resume_hint(tmp_path, capsys, monkeypatch, fake):
    def interrupted(*a, **k):
        raise KeyboardInterrupt("pretrain: stopped at epoch 2, step 5; checkpoint saved")

    monkeypatch.setattr(R, "run_training", interrupted)
    assert ablate(tmp_path, "--step", "f") == 130
    out = capsys.readouterr().out
    assert "[interrupted] table1/f/image/cpu/seed0 (pretrain: stopped at epoch 2, step 5" in out
    assert "Rerun the same command to resume" in out
    assert not (tmp_path / "runs/table1/f/image/cpu/seed0/metrics.json").exists()


def test_each_run_keeps_its_own_log(tmp_path, capsys, monkeypatch, fake):
    monkeypatch.setattr(R, "run_training", FakeTrainer(fail=True))
    assert ablate(tmp_path, "--step", "f") == 1
    monkeypatch.setattr(R, "run_training", fake)
    assert ablate(tmp_path, "--step", "f") == 0
    log = (tmp_path / "runs" / "table1/f/image/cpu/seed0" / "train.log").read_text()
    # Both attempts, appended: the failure with its traceback, then the resumed, finished run.
    assert log.count("=== ") == 2 and "RuntimeError: boom" in log and "Traceback" in log
    assert log.index("[train]") < log.index("boom") < log.index("[resume]")


def test_a_presets_measured_limit_is_said_once_before_its_runs_train(tmp_path, capsys, fake):
    # cpu preset, video: MAE rows a-e stay at chance (preset.caveats); the runs still train
    assert ablate(tmp_path, "--step", "b", "--modality", "video") == 0
    out = capsys.readouterr().out
    assert out.count("ablate.py: note: video MAE rows a-e stay at chance") == 1 and len(fake.calls) == 1
    assert out.index("ablate.py: note:") < out.index("[train]")
    assert ablate(tmp_path, "--table", "1", "--modality", "video", "--dry-run") == 0
    assert capsys.readouterr().out.count("# note: video MAE rows a-e stay at chance") == 1
    # row f, the supervised rows and images are not what it is about: no line
    for args in (("--step", "f"), ("--step", "b", "--mode", "supervised"), ("--fig", "8")):
        assert ablate(tmp_path, *args, "--modality", "video", "--dry-run") == 0
        assert "note:" not in capsys.readouterr().out, args
    assert ablate(tmp_path, "--step", "b", "--dry-run") == 0
    assert "note:" not in capsys.readouterr().out
    # the line names the preset that does better, and that preset says nothing
    assert ablate(tmp_path, "--table", "1", "--modality", "video", "--dry-run") == 0
    assert "--modality video --preset laptop" in capsys.readouterr().out
    assert ablate(tmp_path, "--step", "b", "--modality", "video", "--preset", "laptop", "--dry-run") == 0
    assert "note:" not in capsys.readouterr().out
    # its own measured limit: video row a, in both modes
    for args in (("--table", "1"), ("--fig", "8")):
        assert ablate(tmp_path, *args, "--modality", "video", "--preset", "laptop", "--dry-run") == 0
        notes = [ln for ln in capsys.readouterr().out.splitlines() if "note:" in ln]
        assert len(notes) == 1 and "video row a stays at chance" in notes[0], args


def test_a_caveat_with_an_unknown_key_is_refused(tmp_path, capsys):
    preset = tmp_path / "mine.yaml"
    preset.write_text("preset: {extends: cpu, caveats: [{modality: video, rowz: [a], says: x}]}\n")
    assert ablate(tmp_path, "--step", "b", "--preset", str(preset), "--dry-run") == 2
    assert "rowz" in capsys.readouterr().err
