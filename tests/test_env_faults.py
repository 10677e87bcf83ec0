"""Environment faults and failure kinds through the CLI: one line naming
the path and the fix, whether rerunning helps (transient / deterministic), no traceback, no
temporary file, finished runs intact, and --status saying the kind."""

import pytest

from ablations.cli import main as cli
from ablations.store import atomic, runlog
from ablations.study import runs as R
from ablations.train import memory_plan as M

TINY = ["--step", "f", "--preset", "tiny"]
RUN = "table1/f/image/tiny/seed0"


def fake_measure(cfg, attn_backend="math"):
    return {"params": 1, "macs": 1, "throughput": 1.0, "throughput_by_dtype": {"float32": 1.0}}


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(R, "measure_model", fake_measure)
    monkeypatch.setattr("analysis.report.write_report", lambda runs_dir: runs_dir / "report")
    monkeypatch.setattr(cli, "print_table", lambda *a, **k: None)


def ablate(tmp_path, *args):
    return cli.main([*TINY, "--runs-dir", str(tmp_path / "runs"), *args])


def trainer(error=None):
    def train(cfg, run_dir, progress=True):
        print("a progress line")
        if error is not None:
            raise error
        return {"top1": 50.0, "top5": 90.0, "train_time_s": 1.0}

    return train


def test_full_disk_while_training_is_transient(tmp_path, capsys, monkeypatch):
    class FullFile:  # train.log on a full disk: every write fails
        def write(self, text):
            raise OSError(28, "No space left on device")

        flush = close = lambda self: None

    monkeypatch.setattr(runlog, "open", lambda *a, **k: FullFile(), raising=False)
    full = atomic.WriteFailed(
        28, "could not write x/checkpoint-last.pth: No space left on device (0 MiB free)"
    )
    monkeypatch.setattr(R, "run_training", trainer(full))
    assert ablate(tmp_path) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and out.count("the log copy stops here") == 1
    line = [ln for ln in out.splitlines() if ln.startswith("[failed]")][0]
    assert "Free some space" in line and "rerun the same command to resume (transient)" in line
    assert not [p for p in (tmp_path / "runs").rglob("*") if ".tmp" in p.name]
    assert ablate(tmp_path, "--status") == 0
    assert "failed" in (status := capsys.readouterr().out) and "transient: " in status


def test_a_config_that_cannot_work_is_deterministic_until_it_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(R, "run_training", trainer(RuntimeError("shapes do not match")))
    assert ablate(tmp_path) == 1
    out = capsys.readouterr().out
    assert "RuntimeError: shapes do not match" in out and "will fail the same way (deterministic)" in out
    assert "rerun the same command to resume" not in out
    ablate(tmp_path, "--status")
    assert "deterministic: RuntimeError: shapes do not match" in capsys.readouterr().out
    monkeypatch.setattr(R, "run_training", trainer())
    assert ablate(tmp_path) == 0
    assert not (tmp_path / "runs" / RUN / "failed.json").exists()
    ablate(tmp_path, "--status")
    assert "finished" in capsys.readouterr().out


def test_a_runs_dir_that_is_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(R, "run_training", trainer())
    (tmp_path / "runs").write_text("not a folder")
    assert ablate(tmp_path) == 1
    out, err = capsys.readouterr()
    line = [ln for ln in out.splitlines() if ln.startswith("[failed]")][0]
    assert f"{tmp_path / 'runs'} is a file where a folder must be" in line and "(deterministic)" in line
    assert "Traceback" not in out + err and "Fix that" not in line
    assert (tmp_path / "runs").read_text() == "not a folder"


def test_read_only_report_folder_names_the_report_and_the_fix(tmp_path, capsys, monkeypatch):
    from analysis.report import write_report

    monkeypatch.setattr(R, "run_training", trainer())
    assert ablate(tmp_path) == 0
    capsys.readouterr()
    finished = (tmp_path / "runs" / RUN / "metrics.json").read_text()
    real_open = open

    def read_only(path, mode="r", *a, **k):  # root ignores chmod: what open says on a read-only folder
        if "w" in mode and "report" in str(path):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("analysis.report.write_report", write_report)
    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    monkeypatch.setattr("analysis.speed_table.table_speeds", lambda *a, **k: pytest.skip("no report here"))
    assert cli.main(["--report", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "could not write" in err and ".tmp" not in err and "writable" in err
    assert not [p for p in (tmp_path / "runs").rglob("*") if ".tmp" in p.name]
    assert (tmp_path / "runs" / RUN / "metrics.json").read_text() == finished


def test_read_only_cache_folder_still_plans(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(tmp_path / "cache"))
    raw = {"outside": 10, "blocks": [5, 5], "inputs": [1, 1]}
    monkeypatch.setattr(M, "measure", lambda *a, **k: (1000, [raw, {k: _twice(v) for k, v in raw.items()}]))

    def read_only(path, data):
        raise atomic.WriteFailed(30, f"could not write {path}: Read-only file system")

    monkeypatch.setattr(M, "write_atomic", read_only)
    assert cli.main([*TINY, "--plan", "--device-mem", "4", "--devices", "1"]) == 0
    out, err = capsys.readouterr()
    assert "the measurement is not cached" in out and "HIERA_CACHE" in out and "Traceback" not in out + err
    assert "| pretrain |" in out


def _twice(v):
    return [2 * x for x in v] if isinstance(v, list) else 2 * v
