"""torchrun / DDP helpers.

Launch with ``torchrun --nproc_per_node=N ablate.py ...``: torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK in the environment (no ``--local_rank`` argument is needed or read). Without torchrun
everything here degrades to a single process.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> this process's GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init_distributed(device: str = "auto") -> DistInfo:
    """Read the torchrun environment and join the process group (once per process)."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        # nccl only moves CUDA tensors; gloo covers CPU runs (and the tests).
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dev)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returns it)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_object(obj):
    """[obj of rank 0, obj of rank 1, ...] (just [obj] without a process group)."""
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any rank (so all ranks stop together)."""
    if not is_dist():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class ShardedSampler(torch.utils.data.Sampler):
    """A seeded permutation per epoch, sharded over ranks (like DistributedSampler).

    The order depends only on (seed, epoch), so a resumed run sees exactly the same order.
    ``set_epoch(epoch, skip=k)`` drops this rank's first k indices, which is how a mid-epoch
    resume skips the batches it already trained on without loading them.

    Training pads the permutation to a multiple of the world size (every rank takes the same
    number of steps); evaluation (shuffle=False, pad=False) shards without duplicates so summed
    metrics count every sample exactly once.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle=True, pad=True):
        self.n, self.rank, self.world_size = n, rank, world_size
        self.seed, self.shuffle, self.pad = seed, shuffle, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def full_length(self) -> int:
        """Indices this rank sees in a whole epoch (ignoring skip)."""
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return max(0, self.full_length() - self.skip)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.pad:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order += order[: total - self.n]
        shard = order[self.rank :: self.world_size]
        return iter(shard[self.skip :])
