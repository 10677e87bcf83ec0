"""Saved activations measured on fake tensors (ablations/train/fake_tensors.py): the same bytes as real
tensors for every Table 1 row, classifier and MAE, image and video, fp32 and bf16; paper scale
without the memory; a clear error where values are needed."""

import subprocess
import sys
import textwrap

import pytest
import torch

from ablations.study import config as C
from ablations.train import memory_plan as M
from ablations.train.fake_tensors import FakeValueError, fake_tensors

ROWS = ["mvitv2", "a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize("modality", ["image", "video"])
@pytest.mark.parametrize("step", ROWS)
def test_fake_tensors_save_the_same_bytes_as_real_ones(step, modality, one_thread):
    mode = "supervised" if step == "mvitv2" else "mae"
    cfg = C.resolve(C.Selection(step=step, preset="tiny", mode=mode, modality=modality))[0].config
    # batch 2: the MAE keeps a different random set of units per sample (indexing by the mask)
    for phase in ("supervised",) if mode == "supervised" else ("pretrain", "finetune"):
        for dtype in (None, torch.bfloat16):
            params, (real,) = M.measure(cfg, phase, (2,), dtype, fake=False)
            fake_params, (fake,) = M.measure(cfg, phase, (2,), dtype, fake=True)
            assert sum(real["blocks"]) > 0 and real["outside"] > 0
            assert (fake_params, fake) == (params, real), (phase, dtype)


def test_the_fake_forward_sees_fake_tensors_only():
    cfg = C.resolve(C.Selection(step="f", preset="tiny", mode="mae"))[0].config
    seen = []
    with fake_tensors() as small_values:
        with small_values():
            model, loss_fn = M.phase_model(cfg, "pretrain")
        x = M.model_input(model, 2)
        pack = lambda t: seen.append(type(t).__name__) or t  # noqa: E731
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), small_values():
            loss_fn(model, x)
    assert seen and set(seen) == {"FakeTensor"}


def test_paper_scale_clip_measured_without_its_memory():
    """Hiera-L on a 16x224x224 clip: really ~0.8 GiB of weights and ~2 GiB saved per clip
    (batches 1 and 2: > 5 GiB); fake tensors need only what the interpreter and torch hold."""
    code = textwrap.dedent(
        """
        import resource, torch
        from ablations.study import config as C
        from ablations.train import memory_plan as M
        cfg = C.resolve(C.Selection(step="f", preset="k400-l", mode="mae"))[0].config
        params, (one, two) = M.measure(cfg, "finetune", (1, 2), torch.bfloat16)
        per_clip = two["outside"] + sum(two["blocks"]) - one["outside"] - sum(one["blocks"])
        print(params, per_clip, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=".")
    assert done.returncode == 0, done.stderr[-3000:]
    params, per_clip, peak = map(int, done.stdout.split())
    assert 200e6 < params < 250e6  # Hiera-L (214M) with a 400-class head
    assert per_clip > 1.5 * M.GIB  # what a real forward would have held per clip
    assert peak < 2 * M.GIB, f"peak RSS {peak / M.GIB:.2f} GiB: the fake measurement allocated real memory"


def test_a_value_only_a_fake_tensor_has_is_a_clear_error():
    with fake_tensors() as small_values:
        x = torch.randn(4, 8, 16)  # made outside: no real values, however small
        with small_values(), pytest.raises(FakeValueError, match="real tensors at a smaller input"):
            bool(x.sum() > 0)
        with small_values():
            mask = torch.rand(4, 8).argsort(1) < 3  # made inside from known values: real values kept
            assert bool(mask.sum(1).eq(3).all())
            assert tuple(x[mask].shape) == (12, 16)  # a boolean index from the mask's real values
            x[~mask] = 0.0
            with pytest.raises(FakeValueError, match="without known values"):
                x[x > 0]


def test_a_freed_stale_copy_never_makes_a_new_tensor_unknown():
    """A known tensor written with unknown values is stale; after it is freed, a new tensor may
    get the same real storage address: it must still count as known."""
    with fake_tensors() as small_values:
        x = torch.randn(64)
        with small_values():
            for _ in range(20):
                buf = torch.zeros(64)
                buf.add_(x)  # unknown values: buf's real copy is stale
                del buf
                assert bool(torch.ones(64).sum() == 64)  # known, whatever address it got


PAPER_SCALE = [("f", "mae", "finetune"), ("f", "mae", "pretrain"), ("b", "mae", "pretrain")]


@pytest.mark.slow
@pytest.mark.parametrize("step, mode, phase", PAPER_SCALE + [("mvitv2", "supervised", "supervised")])
def test_paper_scale_fake_equals_real(step, mode, phase, one_thread):
    """Size B at 224 px, batches 1-2, bf16 (the in1k-b preset's models): ~20 s real, ~30 s fake each."""
    cfg = C.resolve(C.Selection(step=step, preset="in1k-b", mode=mode))[0].config
    real = M.measure(cfg, phase, (1, 2), torch.bfloat16, fake=False)
    assert M.measure(cfg, phase, (1, 2), torch.bfloat16, fake=True) == real
