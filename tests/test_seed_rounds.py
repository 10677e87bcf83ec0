"""--seeds LO..HI end to end with a fake trainer: the first round trains LO seeds of every entry,
later rounds add seeds only to the arms of undecided comparisons, a kill in a later round resumes
with the same plan, and --dry-run / --status show the most it may train and where it stands."""

import numpy as np
import pytest

from ablations.store.predictions import save_predictions
from ablations.study import runs as R
from tests import test_cli as shared
from tests.test_cli import ablate

fake, plotted = shared.fake, shared.plotted  # fixtures: fake trainer and measure; plots recorded
N = 400
JITTER = [5.0, 1.0, 3.0, 3.0, 2.0]  # row e (and f) minus row d, per seed
TABLE = "name: trio\ntitle: three rows\nmode: supervised\nrows:\n  d: {}\n  e: {}\n  f: {}\n"


def top1(cfg) -> float:
    return 50.0 + (JITTER[cfg["seed"]] if cfg["model"]["step"] in ("e", "f") else 0.0)


class Trainer:
    """Predictions whose first top1% of samples are right; `stop_at`: the call that is killed.
    The rows are Fig. 8's (supervised d, e, f): their folders are fig8's."""

    def __init__(self, stop_at: int | None = None):
        self.calls, self.stop_at = [], stop_at

    def __call__(self, cfg, run_dir, progress=True):
        self.calls.append(f"{cfg['model']['step']}{cfg['seed']}")
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt("killed")
        labels = np.arange(N) % 10
        right = np.arange(N) < round(top1(cfg) / 100 * N)
        top5 = np.stack(
            [np.where(right, labels, (labels + 1) % 10)] + [(labels + k) % 10 for k in range(2, 6)], 1
        )
        (run_dir / "supervised").mkdir(parents=True, exist_ok=True)
        save_predictions({"top5": top5, "label": labels}, run_dir / "supervised" / "predictions.npz")
        return {"top1": top1(cfg), "top5": 90.0, "train_time_s": 1.0}


def folders(tmp_path, row):
    return sorted(
        p.parent.name for p in (tmp_path / f"runs/fig8/{row}/image/tiny").glob("seed*/metrics.json")
    )


def test_rounds_add_seeds_only_where_undecided_and_resume_after_a_kill(tmp_path, capsys, monkeypatch, fake):
    table = tmp_path / "trio.yaml"
    table.write_text(TABLE)
    args = ["--table", str(table), "--preset", "tiny", "--seeds", "2..4", "--resolve", "12"]
    assert ablate(tmp_path, *args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "The first trains 6 runs" in out and "at most these 12 runs" in out

    # round 1 (6 runs) finishes; the first run of round 2 is killed
    monkeypatch.setattr(R, "run_training", Trainer(stop_at=7))
    assert ablate(tmp_path, *args) == 130
    assert folders(tmp_path, "d") == folders(tmp_path, "f") == ["seed0", "seed1"]
    capsys.readouterr()
    assert ablate(tmp_path, *args, "--status") == 0
    status = capsys.readouterr().out
    assert "round 2: 2 of 8 runs to train" in status and "fig8/d/image/tiny/seed2" in status

    trainer = Trainer()
    monkeypatch.setattr(R, "run_training", trainer)
    assert ablate(tmp_path, *args) == 0
    out = capsys.readouterr().out
    assert trainer.calls[:2] == ["d2", "e2"]  # resumed in round 2: f - e is decided (no spread)
    assert folders(tmp_path, "f") == ["seed0", "seed1"]  # f never got a seed beyond the first round
    assert 3 <= len(folders(tmp_path, "d")) == len(folders(tmp_path, "e")) <= 4
    assert "rounds done after round" in out and "f - e: decided: MDE 0.0" in out
    assert "e - d: decided" in out or "e - d: unresolvable" in out

    # a finished plan trains nothing more, --force included (it retrains only what another
    # build or config trained: the rounds' own runs are finished)
    monkeypatch.setattr(R, "run_training", Trainer(stop_at=1))
    assert ablate(tmp_path, *args, "--force") == 0
    assert "rounds done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--table", "3"], "for table3 give --seeds N"),
        (["--fig", "8", "--step", "f"], "drop --step"),
        (["--table", "OWN"], "needs a target effect"),  # no paper step for f+conv - f: --resolve
    ],
)
def test_rounds_refuse_what_they_cannot_decide(tmp_path, capsys, extra, message):
    own = tmp_path / "own.yaml"
    own.write_text("name: own\nmode: mae\nrows:\n  f: {}\n  f+conv: {from: f, model: {pool: conv}}\n")
    extra = [str(own) if x == "OWN" else x for x in extra]
    assert ablate(tmp_path, *extra, "--preset", "tiny", "--seeds", "2..3", "--dry-run") == 2
    assert message in capsys.readouterr().err


def test_bad_seed_ranges_exit_2(tmp_path, capsys):
    for bad in ("1..4", "5..3", "x"):
        with pytest.raises(SystemExit) as e:
            ablate(tmp_path, "--seeds", bad, "--dry-run")
        assert e.value.code == 2
    assert "LO >= 2" in capsys.readouterr().err


def test_rounds_submit_each_round_as_jobs(tmp_path, capsys, monkeypatch, fake):
    """--launcher: each round's runs are submitted (here: run in-process as a job would, with
    --only); without --wait it stops after one round and says to rerun; with --wait it goes on."""
    from ablations.cli import main as cli
    from ablations.cli.launch.submit import job_argv

    submitted = []

    def submit(args, sel, runs, argv, entry):
        submitted.append([r.name for r in runs])
        base = job_argv(argv, args.runs_dir) + ["--runs-dir", str(args.runs_dir)]
        return max(entry(base + ["--only", r.name]) for r in runs)

    monkeypatch.setattr(cli, "submit_runs", submit)
    monkeypatch.setattr(R, "run_training", Trainer())
    table = tmp_path / "trio.yaml"
    table.write_text(TABLE)
    args = [
        "--table",
        str(table),
        "--preset",
        "tiny",
        "--seeds",
        "2..4",
        "--resolve",
        "12",
        "--launcher",
        "local",
    ]
    assert ablate(tmp_path, *args) == 0
    assert len(submitted) == 1 and len(submitted[0]) == 6
    assert "Rerun this command once these jobs have finished" in capsys.readouterr().out
    assert ablate(tmp_path, *args, "--wait") == 0
    assert [len(s) for s in submitted[1:]][0] == 2 and "rounds done" in capsys.readouterr().out
    assert all("/f/" not in name for s in submitted[1:] for name in s)  # f - e was decided
