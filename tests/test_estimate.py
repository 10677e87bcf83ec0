"""The time estimate of --plan and --dry-run: from a rehearsal's measured step on this device kind
when one exists, else from the training FLOPs over the device's throughput, with its range and
source said. FLOPs are faked here where the arithmetic is the point (counting them is
step_flops.py's job, checked on a real model below)."""

import pytest

from ablations.cli import estimate as E
from ablations.cli import main as cli
from ablations.study import config as C
from ablations.train import memory_plan as M
from ablations.train import step_flops, step_times


def config(preset: str, step: str = "f", **sets) -> dict:
    sel = C.Selection(table=None, step=step, mode=None, modality=None, preset=preset, sets=sets, seeds=1)
    return C.resolve_all(sel)[0][0].config


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(tmp_path))
    return tmp_path


def test_a_gpu_run_without_a_rehearsal_is_estimated_from_flops_over_the_cards_peak(cache, monkeypatch):
    monkeypatch.setattr(E, "train_flops_per_sample", lambda cfg, phase: 1e11)
    monkeypatch.setattr(M, "device_memory_gib", lambda: [])  # previewed on a login node
    cfg = config("in1k-b", **{"data.root": "/nowhere"})
    cfg = {**cfg, "runtime": {**cfg["runtime"], "plan": {"device_mem_gib": 39.4}}}  # a 40 GB card's plan
    est8, notes = E.estimate_run(cfg, 8)
    est16, _ = E.estimate_run(cfg, 16)
    samples = sum(E.train_samples(cfg, p)[0] for p in ("pretrain", "finetune"))
    assert samples == 400 * (1_281_167 // 4096) * 4096 + 50 * (1_281_167 // 1024) * 1024
    fast = samples * 1e11 / (8 * 312e12 * 0.5)  # an A100 40 GB at 50% of its bf16 peak
    assert est8.seconds[0] == pytest.approx(fast) and est8.seconds[2] == pytest.approx(2 * fast)
    assert est16.seconds[1] == pytest.approx(est8.seconds[1] / 2)  # linear in the devices
    assert "A100 40 GB's bf16 peak at 25%-50%" in est8.sources[0]
    assert any("ImageNet-1K's 1,281,167" in n for n in notes)  # the assumed size is said


def test_a_rehearsal_on_a_gpu_kind_replaces_the_flops_estimate(cache, monkeypatch):
    monkeypatch.setattr(M, "device_memory_gib", lambda: [])
    cfg = config("in1k-b", **{"data.root": "/nowhere"})
    for phase in ("pretrain", "finetune"):
        step_times.record(cfg, phase, "NVIDIA A100-SXM4-80GB", 0.002, 64)
    est, _ = E.estimate_run(cfg, 8)
    samples = sum(E.train_samples(cfg, p)[0] for p in ("pretrain", "finetune"))
    assert est.seconds[1] == pytest.approx(samples * 0.002 / 8)
    assert len(est.sources) == 1 and est.sources[0].startswith("rehearsal on NVIDIA A100-SXM4-80GB (")


def test_a_cpu_run_uses_only_this_cpus_rehearsal(cache, monkeypatch):
    monkeypatch.setattr(E, "train_flops_per_sample", lambda cfg, phase: 1e9)
    cfg = config("tiny")
    step_times.record(cfg, "pretrain", "NVIDIA H100 80GB HBM3", 1e-5, 32)  # a GPU's step says nothing here
    est, _ = E.estimate_run(cfg, 1)
    assert est.sources and all("this CPU's matmul rate" in s for s in est.sources)


def test_dry_run_and_plan_print_the_estimate_and_the_selection_total(cache, capsys):
    assert cli.main(["--step", "f", "--preset", "tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("# time: ~") == 1 and "# selection (1 runs, one after another on 1 device(s)): ~" in out
    assert "device-hours" in out and "source: MACs over this CPU's matmul rate" in out
    assert cli.main(["--step", "f", "--preset", "tiny", "--plan", "--device-mem", "4", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    assert "Time estimate on 2 devices (--devices):" in out and "- table1/f/image/tiny/seed0: ~" in out


def test_training_flops_of_hiera_b_are_three_forwards_of_its_9_4_gmacs(cache):
    flops = step_flops.train_flops_per_sample(config("in1k-b", **{"data.root": "/x"}), "finetune")
    assert flops == pytest.approx(3 * 2 * 9.38e9, rel=0.02)  # timm hiera_base_224: 9.38 GMACs
