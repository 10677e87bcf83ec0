"""A run is its resolved config: trained once, found by every table and sweep that asks for it,
whoever trained it (ablations/study/homes.py). Through the command a user types (tiny preset,
--runs-dir); training and measuring are faked here (the real thing: tests/test_user_study.py)."""

import json
import shutil
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ablations.cli import main as cli
from ablations.study import config as C
from ablations.study import homes
from ablations.study import runs as R
from ablations.study.identity import run_identity

REPO = Path(__file__).resolve().parents[1]
F = "table1/f/image/tiny/seed0"  # row f at the preset's own config (mask_ratio 0.6)
F05 = "table1/f/image/tiny+835761/seed0"  # row f at --set mae.mask_ratio=0.5 (a sweep point)
T05 = "table3/mask_ratio-0.5/image/tiny/seed0"  # Table 3's entry with the same resolved config


class Trainer:
    """Writes what the engine writes (each phase's done.json), records which folders it trained."""

    def __init__(self):
        self.trained = []

    def __call__(self, cfg, folder, progress=True):
        for phase in ("pretrain", "finetune") if cfg["mode"] == "mae" else ("supervised",):
            (folder / phase).mkdir(parents=True, exist_ok=True)
            (folder / phase / "done.json").write_text('{"train_time_s": 1, "loss_first": 1, "loss_last": 1}')
        self.trained.append(str(folder))
        return {"top1": 100 * cfg["mae"]["mask_ratio"], "top5": 90.0, "train_time_s": 1.0}


def fake_measure(cfg, attn_backend="math"):
    return {"params": 1, "macs": 1, "throughput": 1.0, "throughput_by_dtype": {"float32": 1.0}}


@pytest.fixture
def fake(monkeypatch, paper_figures_off):
    trainer = Trainer()
    monkeypatch.setattr(R, "run_training", trainer)
    monkeypatch.setattr(R, "measure_model", fake_measure)
    monkeypatch.setattr("analysis.sweeps.sweep_plot", lambda *a, **k: None)
    return trainer


def ablate(runs, *args):
    return cli.main([*args, "--preset", "tiny", "--runs-dir", str(runs), "--quiet"])


def sweep_rows(runs) -> list[str]:
    (md,) = (runs / "report/sweeps").glob("*/sweep.md")
    return [ln for ln in md.read_text().splitlines() if ln.startswith("| table1/f |")]


def test_a_sweep_across_the_default_reports_both_points(tmp_path, fake, capsys):
    runs = tmp_path / "runs"
    assert ablate(runs, "--step", "f") == 0
    assert ablate(runs, "--step", "f", "--set", "mae.mask_ratio=0.75,0.6") == 0
    assert len(fake.trained) == 2  # the default point was trained by the first command
    rows = sweep_rows(runs)
    # both points, in value order; the baseline is the preset's default, not the first value given
    assert [r.split("|")[3].strip() for r in rows] == ["0.6", "0.75"]
    assert "(baseline)" in rows[0] and "(baseline)" not in rows[1]
    assert "Baseline: mae.mask_ratio=0.6." in next((runs / "report/sweeps").glob("*/sweep.md")).read_text()
    capsys.readouterr()
    assert ablate(runs, "--step", "f", "--set", "mae.mask_ratio=0.75,0.6", "--status") == 0
    out = capsys.readouterr().out
    assert f"{F} [mask_ratio=0.6 (baseline)]" in out and "2 finished" in out


def test_a_sweep_point_and_a_table3_entry_train_once(tmp_path, fake, capsys):
    runs = tmp_path / "runs"
    assert ablate(runs, "--step", "f", "--set", "mae.mask_ratio=0.5,0.6") == 0
    assert sorted(Path(p).relative_to(runs).as_posix() for p in fake.trained) == sorted([F, F05])
    capsys.readouterr()
    assert ablate(runs, "--table", "3", "--step", "mask_ratio-0.5", "--dry-run") == 0
    assert f"# reuses {F05} (the same resolved config" in capsys.readouterr().out
    assert ablate(runs, "--table", "3", "--step", "mask_ratio-0.5", "--status") == 0
    assert f"reuses {F05}: top-1 50.0" in capsys.readouterr().out
    assert ablate(runs, "--table", "3", "--step", "mask_ratio-0.5") == 0
    assert len(fake.trained) == 2 and not (runs / T05).exists()  # found, not trained again
    out = capsys.readouterr().out
    assert f"[reuse] {T05}: the same resolved config as {F05}" in out
    assert "| mask_ratio | 0.5 | 50.00 |" in out  # the table printed after training has the entry
    # Table 3's report has the entry, trained by the sweep
    table3 = (runs / "report/tiny/table3.md").read_text()
    assert any(ln.startswith("| mask_ratio") and "0.5" in ln and "50.0" in ln for ln in table3.splitlines())
    names = {e["name"] for e in json.loads((runs / F05 / "names.json").read_text())}
    assert names == {F05, T05}


def test_folders_from_before_the_index_and_copied_ones_are_found(tmp_path, fake, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert ablate(one, "--step", "f", "--set", "mae.mask_ratio=0.5") == 0
    # another machine's runs folder, merged by copying its run folders in (no index, no names)
    (two / F05).parent.mkdir(parents=True)
    shutil.copytree(one / F05, two / F05)
    (two / F05 / "names.json").unlink()
    (two / F05 / "identity.json").unlink()  # a folder from before identity.json: its config.yaml says
    assert ablate(two, "--table", "3", "--step", "mask_ratio-0.5") == 0
    assert len(fake.trained) == 1 and f"[reuse] {T05}" in capsys.readouterr().out
    assert json.loads(
        (two / ".identities" / next((two / ".identities").glob("*.json")).name).read_text()
    ) == {"home": F05}


def test_conflicts_are_refused_before_any_work(tmp_path, fake, capsys):
    runs = tmp_path / "runs"
    # Table 3's mask-ratio entries set the key themselves: the points would be one run
    assert ablate(runs, "--table", "3", "--set", "mae.mask_ratio=0.5,0.9", "--dry-run") == 2
    err = capsys.readouterr().err
    assert "mask_ratio-0.5" in err and "themselves" in err and "drop mae.mask_ratio from --set" in err
    assert err.count("\n") == 1
    # a later --set of a swept key
    assert ablate(runs, "--step", "f", "--set", "mae.mask_ratio=0.5,0.9", "--set", "mae.mask_ratio=0.6") == 2
    assert "given twice (0.5,0.9, then 0.6)" in capsys.readouterr().err
    # a big sweep needs --yes; --dry-run shows its size
    big = ["--step", "f", "--set", "mae.mask_ratio=" + ",".join(f"0.{i:02d}" for i in range(10, 75))]
    assert ablate(runs, *big) == 2
    assert "65 points x 1 entries x 1 seeds = 65 runs: more than 64. Add --yes" in capsys.readouterr().err
    assert ablate(runs, *big, "--dry-run") == 0
    assert capsys.readouterr().out.startswith("# sweep tiny-mask_ratio-")
    # a user table named like the runs folder's own folders
    (tmp_path / "report.yaml").write_text("mode: mae\nrows:\n  x: {from: f, set: {mae.mask_ratio: 0.5}}\n")
    assert ablate(runs, "--table", str(tmp_path / "report.yaml"), "--dry-run") == 2
    assert "uses for itself" in capsys.readouterr().err
    assert fake.trained == [] and not runs.exists()


def test_a_damaged_table_definition_leaves_the_other_reports(tmp_path, fake, capsys):
    runs, mine = tmp_path / "runs", tmp_path / "mine.yaml"
    mine.write_text("mode: mae\nrows:\n  x: {from: f, set: {mae.mask_ratio: 0.7}}\n")
    assert ablate(runs, "--table", str(mine)) == 0
    kept = runs / "mine/table.yaml"  # cut short: its first line still says where it came from
    kept.write_text(kept.read_text().splitlines()[0] + "\nrows: [\n")
    capsys.readouterr()
    assert ablate(runs, "--step", "f") == 1  # trained, reported, but a part of the report failed
    out = capsys.readouterr().out
    damaged = [ln for ln in out.splitlines() if ln.startswith("[damaged] table mine")]
    assert len(damaged) == 1 and f"--table {mine}" in damaged[0]
    assert (runs / "report/tiny/table1.md").exists()
    assert "`mine` | damaged" in (runs / "report/index.md").read_text()
    assert ablate(runs, "--report") == 1
    assert ablate(runs, "--table", str(mine)) == 0  # its own command rewrites the definition
    assert ablate(runs, "--report") == 0


def test_deleted_metrics_and_identity_are_shown_for_what_they_are(tmp_path, fake, capsys):
    runs = tmp_path / "runs"
    assert ablate(runs, "--step", "f") == 0
    (runs / F / "metrics.json").unlink()
    capsys.readouterr()
    assert ablate(runs, "--step", "f", "--status") == 0
    out = capsys.readouterr().out
    assert "trained" in out and "metrics.json missing: the same command rebuilds it (no training)" in out
    assert "stopped" not in out
    assert ablate(runs, "--step", "f") == 0
    assert "every phase is done; rebuilding it" in capsys.readouterr().out
    (runs / F / "identity.json").unlink()
    assert ablate(runs, "--step", "f", "--status") == 0
    assert "finished  top-1 60.0; identity.json missing: taken from config.yaml" in capsys.readouterr().out


def test_damaged_predictions_name_force_on_that_run(tmp_path, fake, capsys):
    runs = tmp_path / "runs"
    assert ablate(runs, "--step", "f", "--set", "mae.mask_ratio=0.6,0.75") == 0
    for folder in (F, "table1/f/image/tiny+72f907/seed0"):
        (runs / folder / "finetune/predictions.npz").write_bytes(b"not a zip")
    capsys.readouterr()
    assert ablate(runs, "--report") == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "predictions.npz" in ln]
    assert lines and all(f"--only {F} --force" in ln or "+72f907" in ln for ln in lines)
    assert all("--force" in ln for ln in lines)


DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ablations.cli import main as cli
    from ablations.study import runs as R

    def train(cfg, folder, progress=True):
        with open(sys.argv[1], "a") as f:
            f.write(str(folder) + "\\n")
        time.sleep(2.0)  # long enough for the other command to arrive while this one trains
        return {"top1": 50.0, "top5": 90.0, "train_time_s": 1.0}

    R.run_training = train
    R.measure_model = lambda cfg, attn_backend="math": {"params": 1, "macs": 1, "throughput": 1.0}
    cli.write_report = lambda runs_dir, *a, **k: Path(runs_dir)
    cli.print_table = cli.print_trends = lambda *a, **k: None
    sys.exit(cli.main(sys.argv[2:]))
""")


def test_two_settlers_of_one_identity_agree_on_one_folder(tmp_path):
    """The index lock is an flock per open file: two threads contend as two processes do."""
    first = C.resolve(C.Selection(step="f", preset="tiny", sets={"mae.mask_ratio": 0.5}))[0]
    second = C.resolve(C.Selection(table="table3", step="mask_ratio-0.5", preset="tiny"))[0]
    assert first.name != second.name
    ident = run_identity(first.config)
    start = threading.Barrier(8)

    def settle(run):
        start.wait()
        return homes.settle(tmp_path, run, ident)

    with ThreadPoolExecutor(8) as pool:
        folders = set(pool.map(settle, [first, second] * 4))
    assert len(folders) == 1 and len(list((tmp_path / ".identities").glob("*.json"))) == 1
    (folder,) = folders
    assert {e["name"] for e in homes.names(folder)} == {first.name, second.name}


@pytest.mark.slow  # two processes (~30 s on 2 busy cores); the threads above cover the lock itself
def test_two_concurrent_commands_sharing_one_identity_train_it_once(tmp_path):
    runs, log = tmp_path / "runs", tmp_path / "trained.txt"
    common = ["--preset", "tiny", "--runs-dir", str(runs), "--quiet"]
    commands = [["--step", "f", "--set", "mae.mask_ratio=0.5"], ["--table", "3", "--step", "mask_ratio-0.5"]]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(log), *c, *common],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for c in commands
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert len(log.read_text().splitlines()) == 1, outs  # one of them trained it
    assert all(p.returncode in (0, 1) for p in procs), outs
    # the other found it finished, or busy (then rerunning it reports it without training)
    assert any("[skip]" in o or "[busy]" in o for o in outs), outs
    assert not (runs / T05).exists() or not (runs / F05).exists()
    homes = {json.loads(p.read_text())["home"] for p in (runs / ".identities").glob("*.json")}
    assert len(homes) == 1
