"""Activation checkpointing (runtime.grad_ckpt): the same gradients, drop path included."""

import pytest
import torch

import models
from models.mae import build_mae


def grads(model, loss_fn, ckpt, seed=0):
    """Parameter gradients of one forward+backward with the first `ckpt` blocks checkpointed."""
    model.set_grad_checkpointing(ckpt)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same drop-path draws (and MAE mask) with and without
    loss_fn(model).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b):
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("step", ["mvitv2", "b", "f"])
def test_classifier_gradients_equal_with_and_without(step):
    torch.manual_seed(0)
    m = models.build("cpu-xs", step=step, num_classes=10, drop_path=0.3).train()
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([1, 2, 3])
    loss = lambda net: torch.nn.functional.cross_entropy(net(x), y)  # noqa: E731
    plain = grads(m, loss, 0)
    assert_same(plain, grads(m, loss, True))
    assert_same(plain, grads(m, loss, 2))  # the first 2 blocks only
    # drop path really draws: another seed gives other gradients
    assert not torch.allclose(
        plain["blocks.0.mlp.fc1.weight"], grads(m, loss, 0, seed=1)["blocks.0.mlp.fc1.weight"]
    )


@pytest.mark.parametrize("modality", ["image", "video"])
def test_sparse_mae_encoder_gradients_equal_with_and_without(modality):
    torch.manual_seed(0)
    mae = build_mae(
        {"size": "cpu-xs", "step": "f", "modality": modality},
        {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2},
        drop_path=0.3,
    ).train()
    x = torch.randn(2, 3, *mae.encoder.cfg.input_size)
    loss = lambda net: net(x)[0]  # noqa: E731  (the mask is drawn from the seeded RNG)
    assert_same(grads(mae, loss, 0), grads(mae, loss, True))
    assert mae.encoder.grad_ckpt_blocks == len(mae.encoder.blocks)


def test_no_checkpointing_without_grad_and_bad_n():
    m = models.build("cpu-xs", step="f", num_classes=10)
    m.set_grad_checkpointing(True)
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))  # eval path runs the blocks directly
    with pytest.raises(ValueError, match="blocks"):
        m.set_grad_checkpointing(len(m.blocks) + 1)


def test_bf16_autocast_gradients_equal_with_and_without():
    torch.manual_seed(0)
    m = models.build("cpu-xs", step="f", num_classes=10, drop_path=0.2).train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])

    def loss(net):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.nn.functional.cross_entropy(net(x).float(), y)

    # the recomputed forward runs under the same autocast state, so the bf16 casts repeat exactly
    assert_same(grads(m, loss, 0), grads(m, loss, True))


def _ddp_worker(rank, port, run_dir):
    import os

    from ablations.train.phases import fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))  # fmt: skip
    _fit_cpu_xs(fit, run_dir, batch_size=8, grad_ckpt=True)  # the global batch, split over 2 ranks
    torch.distributed.destroy_process_group()


def _fit_cpu_xs(fit, run_dir, batch_size, grad_ckpt):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build("cpu-xs", step="f", num_classes=3)
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32, generator=g), torch.arange(16) % 3)
    phase = {"epochs": 1, "batch_size": batch_size, "blr": 0.05, "lr": None, "weight_decay": 0.05,
             "betas": [0.9, 0.999], "warmup_epochs": 0, "min_lr": 0.0, "accum_iter": 1}  # fmt: skip
    crit = torch.nn.CrossEntropyLoss()
    runtime = {"device": "cpu", "amp": "none", "log_every": 1, "grad_ckpt": grad_ckpt}
    fit(model, lambda m, x, y: crit(m(x), y), data, None, phase, phase_dir=run_dir, phase="t",
        runtime=runtime, progress=False)  # fmt: skip


def test_ddp_with_checkpointing_matches_one_process(tmp_path):
    """2 gloo processes x 4 per rank with every block checkpointed = 1 process x 8 without."""
    import socket
    import time

    import torch.multiprocessing as mp

    from ablations.train.checkpoint import load_checkpoint
    from ablations.train.phases import fit

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.start_processes(_ddp_worker, args=(port, tmp_path / "ddp"), nprocs=2, join=False)
    _fit_cpu_xs(fit, tmp_path / "one", batch_size=8, grad_ckpt=False)
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=5):  # returns as each worker ends; a worker's error raises here
        if time.monotonic() > deadline:  # a hang fails instead of waiting
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish in 300 s")
    w_ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint-last.pth")["model"]
    w_one = load_checkpoint(tmp_path / "one" / "checkpoint-last.pth")["model"]
    for k in w_one:
        torch.testing.assert_close(w_ddp[k], w_one[k], atol=1e-5, rtol=1e-4, msg=k)
