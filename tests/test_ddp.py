"""DDP on CPU (gloo): 2 processes x batch 4 end with the same weights and eval metrics as
1 process x batch 8 (same global batch 16, deterministic model and data, gradient accumulation on)."""

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from ablations.train.checkpoint import load_checkpoint, seed_everything
from ablations.train.distributed import init_distributed
from ablations.train.engine import evaluate
from ablations.train.loop import val_loader
from ablations.train.phases import fit


class TinyNet(nn.Module):
    def __init__(self, d_in=12, d=16, num_classes=3):
        super().__init__()
        self.embed = nn.Linear(d_in, d)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU()) for _ in range(2)
        )
        self.head = nn.Linear(d, num_classes)

    def forward(self, x):
        x = self.embed(x.flatten(1))
        for b in self.blocks:
            x = x + b(x)
        return self.head(x)


def _data(n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 3, 2, 2, generator=g)
    return torch.utils.data.TensorDataset(x, (x.sum((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long())


def _train(run_dir, max_per_device):
    torch.set_num_threads(1)
    seed_everything(0)
    phase = {
        "epochs": 2,
        "batch_size": 16,  # global; max_per_device 8 // world -> 2 accumulation steps
        "blr": 0.05,
        "lr": None,
        "weight_decay": 0.05,
        "betas": [0.9, 0.999],
        "warmup_epochs": 1,
        "min_lr": 0.0,
        "clip_grad": 1.0,
    }
    crit = nn.CrossEntropyLoss()
    return fit(
        TinyNet(),
        lambda m, x, y: crit(m(x), y),
        _data(64),
        _data(11),
        phase,
        phase_dir=run_dir,
        phase="t",
        runtime={"device": "cpu", "amp": "none", "log_every": 1, "max_batch_per_device": max_per_device},
        progress=False,
    )


def _worker(rank, world, port, run_dir, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    result = _train(run_dir, max_per_device=8 // world)
    if rank == 0:
        torch.save(result, out)
    torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), tmp_path / "ddp", tmp_path / "ddp.pt"), nprocs=2)
    single = _train(tmp_path / "single", max_per_device=8)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["lr"] == single["lr"] == 0.05 * 16 / 256  # lr scales with the global batch
    assert ddp["steps_per_epoch"] == 8 and single["steps_per_epoch"] == 8
    assert (ddp["batch_per_device"], ddp["accum_iter"]) == (4, 2) and single["batch_per_device"] == 8
    w_ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint-last.pth")["model"]
    w_one = load_checkpoint(tmp_path / "single" / "checkpoint-last.pth")["model"]
    for k in w_one:
        assert torch.allclose(w_ddp[k], w_one[k], atol=1e-5, rtol=1e-4), k
    assert not torch.equal(w_one["embed.weight"], TinyNet().embed.weight)  # it did train
    # Eval is sharded without padding (11 samples over 2 ranks) and summed over ranks.
    assert abs(ddp["top1"] - single["top1"]) < 1e-6
    assert abs(ddp["val_loss"] - single["val_loss"]) < 1e-4


def _predict(rank, world, port, out):
    """Evaluate one fixed model with the val loader of `world` ranks; rank 0 saves the predictions."""
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dist = init_distributed("cpu")
    loader = val_loader(_data(11), 3, dist)  # 11 samples: rank 0 gets 6, rank 1 gets 5
    pred = evaluate(TinyNet(), loader, dist.device, predictions=True)["predictions"]
    if rank == 0:
        torch.save({k: torch.from_numpy(v) for k, v in pred.items()}, out)
    if world > 1:
        torch.distributed.destroy_process_group()


def spawn_or_fail(fn, args, nprocs: int, timeout_s: float = 120.0) -> None:
    """mp.spawn that fails the test (killing the workers) instead of hanging."""
    ctx = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{nprocs} gloo processes still running after {timeout_s} s")


def test_predictions_are_in_dataset_order_for_any_world_size(tmp_path):
    spawn_or_fail(_predict, (2, _free_port(), tmp_path / "two.pt"), nprocs=2)
    _predict(0, 1, None, tmp_path / "one.pt")
    two, one = (torch.load(tmp_path / f, weights_only=True) for f in ("two.pt", "one.pt"))
    assert torch.equal(one["label"], _data(11).tensors[1]) and one["top5"].shape == (11, 3)
    assert torch.equal(two["top5"], one["top5"]) and torch.equal(two["label"], one["label"])
