"""Memory plan: the measured activation estimate against direct measurements, the choice of
per-device batch and checkpointing, the cache, and ablate.py --plan / --device-mem."""

import ctypes
import gc
import json

import pytest
import torch
import yaml

import models
from ablations.cli import main as cli
from ablations.study import config as C
from ablations.study.identity import run_identity
from ablations.train import memory_plan as M

GIB = M.GIB


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]  # fmt: skip  # noqa: E501


def malloc_live() -> int | None:
    """Bytes glibc has handed out right now (all arenas + mmapped), or None without mallinfo2."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd


def held_after_forward(model, x, dtype) -> int | None:
    """Real CPU memory the forward leaves allocated for backward (malloc counters)."""
    gc.collect()
    before = malloc_live()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long))
    after = malloc_live()
    del loss
    return None if before is None else after - before


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_estimate_from_batches_1_2_matches_direct_measurement_at_batch_6(dtype):
    torch.manual_seed(0)
    model = models.build("cpu-s", step="f", num_classes=10).train()
    loss = lambda x: lambda m: torch.nn.functional.cross_entropy(m(x), torch.zeros(len(x), dtype=torch.long))  # noqa: E731
    small, large = (M.saved_bytes(model, loss(torch.randn(b, 3, 64, 64)), dtype) for b in (1, 2))
    acts = M.Activations.fit(0, small, large, 1, 2)
    x = torch.randn(6, 3, 64, 64)
    blocks = len(model.blocks)
    for ckpt in (0, 3, blocks):  # none, the first 3 blocks, all
        model.set_grad_checkpointing(ckpt)
        estimate = acts.saved(6, ckpt)
        # direct 1: what autograd really saves with checkpointing on (checkpointed blocks keep their input)
        saved = M.saved_bytes(model, loss(x), dtype)
        direct = saved["outside"] + sum(saved["blocks"])
        assert abs(estimate - direct) <= 0.15 * direct, (ckpt, estimate, direct)
        # direct 2: the allocator's own count of what the forward left allocated
        real = held_after_forward(model, x, dtype)
        if real is not None:
            assert abs(estimate - real) <= 0.15 * real, (ckpt, estimate, real)
    assert acts.saved(6, blocks) < 0.2 * acts.saved(6, 0)  # checkpointing saves most of it


def fake_acts(per_sample_gib: float, blocks: int = 4, params: int = 10**8) -> M.Activations:
    """Activations split evenly over blocks; a block's input is a tenth of what it saves."""
    b = per_sample_gib * GIB / blocks
    return M.Activations(params, (0.0, 0.0), ((0.0, b),) * blocks, ((0.0, b / 10),) * blocks)


def plan(monkeypatch, per_sample_gib, mem, devices=8, global_batch=1024, amp="none"):
    monkeypatch.setattr(M, "activations", lambda *a, **k: fake_acts(per_sample_gib))
    cfg = {"mode": "supervised", "supervised": {"batch_size": global_batch}, "runtime": {"amp": amp}}
    return M.plan_run(cfg, mem, devices)["supervised"]


def test_plans_under_autocast_count_cuda_autocasts_fp32_ops(monkeypatch):
    """64 x 1 GiB fits 80 GiB in fp32; under bf16 the measured CPU-autocast bytes grow by
    CUDA_AUTOCAST_MARGIN (CUDA keeps LayerNorm etc. in fp32), so 64 no longer fit."""
    fp32, bf16 = plan(monkeypatch, 1.0, 80), plan(monkeypatch, 1.0, 80, amp="bf16")
    assert fp32.per_device == 64 and bf16.per_device == 32 and bf16.fits
    assert bf16.memory["activations"] == pytest.approx(M.CUDA_AUTOCAST_MARGIN * 32 * 2**30)


def test_plan_takes_the_largest_batch_then_checkpointing(monkeypatch):
    # 1e8 params: 1.6 GiB of weights/grads/AdamW + 0.4 GiB DDP buckets
    p = plan(monkeypatch, 0.1, 80)  # 128 per device need 12.8 GiB: fits as is
    assert (p.per_device, p.accum, p.grad_ckpt) == (128, 1, 0) and p.fits
    p = plan(monkeypatch, 1.0, 80)  # 64 x 1 GiB fits, 128 does not: accumulate, no checkpointing
    assert (p.per_device, p.accum, p.grad_ckpt) == (64, 2, 0) and p.fits
    p = plan(monkeypatch, 4.0, 80)  # only 16 fit plainly (< MIN_BATCH): checkpoint until 32 fit
    assert p.grad_ckpt > 0 and p.per_device >= M.MIN_BATCH and p.fits
    assert p.per_device * p.accum * p.devices == 1024
    smaller = plan(monkeypatch, 4.0, 40)
    assert smaller.fits and (smaller.grad_ckpt, -smaller.per_device) >= (p.grad_ckpt, -p.per_device)
    assert not plan(monkeypatch, 400.0, 40).fits  # not even one sample: reported, not hidden


def test_measurements_are_cached(tmp_path, monkeypatch):
    cfg = C.resolve(C.Selection(step="f", preset="tiny", mode="supervised"))[0].config
    cache = tmp_path / "acts.json"
    first = M.activations(cfg, "supervised", cache=cache)
    assert first.params > 0 and first.saved(4) > first.saved(1) > 0

    def no_measuring(*a, **k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(M, "measure", no_measuring)
    assert M.activations(cfg, "supervised", cache=cache) == first
    other = "none" if cfg["runtime"]["amp"] == "bf16" else "bf16"
    with pytest.raises(AssertionError):
        M.activations(cfg, "supervised", amp=other, cache=cache)  # another dtype is another key


def test_entries_measured_by_an_older_method_are_measured_again(tmp_path, monkeypatch):
    cfg = C.resolve(C.Selection(step="f", preset="tiny", mode="supervised"))[0].config
    key = json.loads(M.measurement_key(cfg, "supervised", "none"))
    assert key.pop("version") == M.MEASURE_VERSION
    stale = {"params": 1, "outside": [0, 1], "blocks": [[0, 1]], "inputs": [[0, 1]]}
    cache = tmp_path / "acts.json"
    cache.write_text(json.dumps({json.dumps(key, sort_keys=True): stale}))  # the old key: no version
    measured = []
    raw = {"outside": 1, "blocks": [1], "inputs": [1]}
    monkeypatch.setattr(M, "measure", lambda *a, **k: measured.append(a) or (2, [raw, raw]))
    assert M.activations(cfg, "supervised", amp="none", cache=cache).params == 2 and measured


def test_cli_plan_and_recorded_plan_keep_the_run_identity(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HIERA_CACHE", str(tmp_path))
    assert cli.main(["--step", "f", "--preset", "tiny", "--plan", "--device-mem", "4", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 devices x 4 GiB" in out and "| pretrain |" in out and "| finetune |" in out
    assert cli.main(["--step", "f", "--preset", "tiny", "--dry-run"]) == 0
    plain = yaml.safe_load(capsys.readouterr().out.split("---")[0])
    assert (
        cli.main(["--step", "f", "--preset", "tiny", "--dry-run", "--device-mem", "4", "--devices", "2"]) == 0
    )
    text = capsys.readouterr().out
    planned = yaml.safe_load(text.split("---")[0])
    assert planned["runtime"]["plan"]["finetune"]["max_batch_per_device"] >= 1
    assert run_identity(planned) == run_identity(plain)  # the plan never changes what a run is
    assert "# run: table1/f/image/tiny/seed0" in text
    assert cli.main(["--step", "f", "--preset", "tiny", "--plan", "--device-mem", "0"]) == 2
    assert "--device-mem" in capsys.readouterr().err


def test_grad_ckpt_config_values():
    cfg = C.resolve(C.Selection(step="f", preset="tiny", sets={"runtime.grad_ckpt": 3}))[0].config
    assert cfg["runtime"]["grad_ckpt"] == 3 and cfg["runtime"]["compile"] is False
    with pytest.raises(C.ConfigError, match="grad_ckpt"):
        C.resolve(C.Selection(step="f", preset="tiny", sets={"runtime.grad_ckpt": "some"}))
