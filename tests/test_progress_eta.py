"""Whole-run progress: the run's ETA beside the phase's, and a selection's
'run k of n' with the time left at its finished runs' mean wall time."""

import json

from ablations.cli import main as cli
from ablations.study import config as C
from ablations.study import runs as R
from ablations.train.engine import etas
from ablations.train.phases import later_work


def test_the_run_eta_counts_the_later_phases():
    cfg = C.resolve(C.Selection(step="f", preset="tiny", sets={"finetune.epochs": 3}))[0].config
    assert later_work(cfg, ["pretrain", "finetune"], "pretrain") == ((3, 64),)  # data.train_size
    assert later_work(cfg, ["pretrain", "finetune"], "finetune") == ()
    assert etas(65.0, 3725.0) == "ETA 00:01:05 (run 01:02:05)" and etas(5.0) == "ETA 00:00:05"


def test_a_selection_says_run_k_of_n_and_its_time_left(tmp_path, capsys, monkeypatch):
    def train(cfg, run_dir, progress=True):
        return {"top1": 50.0, "top5": 90.0, "train_time_s": 1.0}

    monkeypatch.setattr(R, "run_training", train)
    monkeypatch.setattr(R, "measure_model", lambda cfg, attn_backend="math": {"throughput": 1.0})
    monkeypatch.setattr("analysis.report.write_report", lambda runs_dir: runs_dir / "report")
    monkeypatch.setattr(cli, "print_table", lambda *a, **k: None)
    monkeypatch.setattr(R, "close_segment", lambda folder: [[0.0, 600.0]])  # each run: 10 minutes
    args = ["--step", "f", "--preset", "tiny", "--seeds", "3", "--runs-dir", str(tmp_path)]
    assert cli.main(args) == 0
    heads = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("== run")]
    assert heads[0].startswith("== run 1 of 3: table1/f/image/tiny/seed0 (selection: 3 runs to train;")
    assert heads[1].endswith(
        "(selection: 2 runs to train, ETA 00:20:00 at the 1 finished runs' mean wall time)"
    )
    assert "ETA 00:10:00 at the 2 finished" in heads[2]
    metrics = json.loads((tmp_path / "table1/f/image/tiny/seed0/metrics.json").read_text())
    assert metrics["wall_time_s"] == 600.0
