"""The GPU a run lands on sets its batch, checked on the CPU by faking the one
function that reads the device memory (memory_plan.device_memory_gib)."""

import pytest
import yaml

from ablations.cli import main as cli
from ablations.train import memory_plan as M

L = ["--step", "f", "--preset", "in1k-l"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("activations")  # Hiera-L measured once for every test here


def plan_rows(text: str) -> dict:
    """{phase: (per device, accum)} from --plan's table."""
    rows = [ln.split("|")[1:-1] for ln in text.splitlines() if ln.startswith("| table1/")]
    return {r[1].strip(): (int(r[4]), int(r[5])) for r in rows}


@pytest.mark.parametrize("gib", [40, 80])
def test_the_device_memory_sets_the_batch_as_plan_says(gib, cache, capsys, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(cache))
    monkeypatch.setenv("WORLD_SIZE", "8")  # 8 processes, as the README's torchrun command
    cli.main([*L, "--plan", "--device-mem", str(gib), "--devices", "8"])
    want = plan_rows(capsys.readouterr().out)
    reported = M.CARD_REPORTED_GIB[gib]  # what a real 40 / 80 GB card tells PyTorch: under 40 / 80 GiB
    monkeypatch.setattr(M, "device_memory_gib", lambda: [reported] * 8)
    assert cli.main([*L, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("[plan] this GPU has") == 1 and f"{M.planned_gib(gib):g} GiB" in out
    plan = yaml.safe_load(out.split("---")[0])["runtime"]["plan"]
    got = {p: (plan[p]["max_batch_per_device"], plan[p]["accum_iter"]) for p in ("pretrain", "finetune")}
    assert got == want and set(want) == {"pretrain", "finetune"}
    for phase, (per_device, accum) in want.items():
        assert (
            f"# {phase}: global batch" in out and f"= {per_device} per device x {accum} accumulation" in out
        )


def test_an_explicit_cap_or_device_mem_wins(cache, capsys, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(cache))
    monkeypatch.setattr(M, "device_memory_gib", lambda: [40.0])
    assert cli.main([*L, "--dry-run", "--set", "runtime.max_batch_per_device=16"]) == 0
    out = capsys.readouterr().out
    cfg = yaml.safe_load(out.split("---")[0])
    assert (
        "[plan]" not in out
        and cfg["runtime"]["plan"] is None
        and cfg["runtime"]["max_batch_per_device"] == 16
    )
    assert cli.main([*L, "--dry-run", "--device-mem", "80"]) == 0
    out = capsys.readouterr().out
    assert (
        "[plan]" not in out
        and yaml.safe_load(out.split("---")[0])["runtime"]["plan"]["device_mem_gib"] == 79.1  # an 80 GB card
    )


def test_no_gpu_here_previews_the_card_the_preset_is_sized_for(cache, capsys, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(cache))
    monkeypatch.setattr(M, "device_memory_gib", lambda: [])
    assert cli.main([*L, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[plan] previewed for an 80 GB card (79.1 GiB as it reports)" in out
    assert yaml.safe_load(out.split("---")[0])["runtime"]["plan"]["device_mem_gib"] == 79.1
    assert cli.main(["--step", "f", "--preset", "tiny", "--dry-run"]) == 0  # a CPU preset: no plan
    out = capsys.readouterr().out
    assert "[plan]" not in out and yaml.safe_load(out.split("---")[0])["runtime"]["plan"] is None
