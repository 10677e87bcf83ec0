"""The preview is what runs: the per-device batch, accumulation and checkpointed blocks that
--dry-run prints for a card size on a machine without a GPU (a login node) equal what the training
loop splits the batch into (loop.phase_split) when the command runs on 8 such GPUs. The GPUs are
faked at the one function that reads them (memory_plan.device_memory_gib), reporting what a real
40 / 80 GB card reports (a little under 40 / 80 GiB)."""

import re

import pytest

from ablations.cli import main as cli
from ablations.train import distributed as D
from ablations.train import memory_plan as M
from ablations.train.loop import phase_split

LINE = re.compile(
    r"# (\w+): global batch \d+ = (\d+) per device x (\d+) accumulation x (\d+) processes; "
    r"checkpointed blocks (\d+)/\d+"
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("activations")  # each model measured once for every test here


def previewed(argv: list[str], capsys) -> dict:
    """{(run, phase): (per device, accum, ckpt blocks)} from --dry-run's comments."""
    assert cli.main([*argv, "--dry-run"]) == 0
    out, got, run = capsys.readouterr().out, {}, None
    for line in out.splitlines():
        if line.startswith("# run: "):
            run = line[len("# run: ") :]
        elif m := LINE.match(line):
            assert int(m[4]) == 8
            got[run, m[1]] = (int(m[2]), int(m[3]), int(m[5]))
    return got


def trained(argv: list[str], monkeypatch) -> dict:
    """The same, as the training loop splits each phase of the configs the command trains with."""
    seen = []
    monkeypatch.setattr(cli, "check_data_once", lambda runs, *a: None)  # no ImageNet here
    monkeypatch.setattr(D, "init_distributed", lambda *a, **k: None)  # no 8-process group either
    monkeypatch.setattr(cli, "run_command", lambda args, sel, runs: seen.extend(runs) or 0)
    assert cli.main(argv) == 0
    return {
        (run.name, p): tuple(int(v) for v in phase_split(run.config[p], run.config["runtime"], p, 8))
        for run in seen
        for p in ("pretrain", "finetune", "supervised")
        if p in run.config and run.config["mode"] == ("supervised" if p == "supervised" else "mae")
    }


def check(selection: list[str], gib: int, cache, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HIERA_CACHE", str(cache))
    monkeypatch.setenv("WORLD_SIZE", "8")  # torchrun --nproc_per_node 8
    root = cache / "imagenet"  # the layout a dry run checks (it scans no images)
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True, exist_ok=True)
    argv = [*selection, "--set", f"data.root={root}"]
    monkeypatch.setattr(M, "device_memory_gib", lambda: [])  # the login node
    want = previewed([*argv, "--device-mem", str(gib)], capsys)
    monkeypatch.setattr(M, "device_memory_gib", lambda: [M.CARD_REPORTED_GIB[gib]] * 8)  # the GPU node
    got = trained(argv, monkeypatch)
    assert want and got == want


@pytest.mark.parametrize("gib", [40, 80])
def test_row_f_at_size_l_previews_what_40_and_80_gb_gpus_train(gib, cache, capsys, monkeypatch):
    check(["--step", "f", "--preset", "in1k-l"], gib, cache, capsys, monkeypatch)


@pytest.mark.slow  # every Table 1 model measured cold: minutes (row f above covers the same path)
@pytest.mark.parametrize("preset", ["in1k-b", "in1k-l"])
@pytest.mark.parametrize("gib", [40, 80])
def test_table1_previews_what_40_and_80_gb_gpus_train(preset, gib, cache, capsys, monkeypatch):
    check(["--table", "1", "--preset", preset], gib, cache, capsys, monkeypatch)


def test_40_gb_is_the_memory_such_a_card_reports():
    assert M.planned_gib(40) == 39.4 and M.planned_gib(80) == 79.1 and M.planned_gib(39.4) == 39.4
    assert M.planned_gib(round(M.CARD_REPORTED_GIB[40], 1)) == M.planned_gib(40)
