"""torchrun / DDP helpers.

Launch with ``torchrun --nproc_per_node=N ablate.py ...``: torchrun sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment (no ``--local_rank`` argument is
needed or read); a Slurm launcher exports the same names. ``ablations.cli.main`` joins the
process group once at start (``init_distributed``) and leaves it at exit (``shutdown``); without
WORLD_SIZE > 1 everything here degrades to a single process.

Rank 0 decides and writes; ``main_only`` runs a function on rank 0 and hands its result (or its
error) to every rank. ``agreed`` runs a function on every rank and turns an error on any rank
into the same error on all of them, so no rank is left waiting in a collective. Both talk over a
separate gloo "control" group, so a control message can never be matched with a training
collective still pending on the default group.

Timeouts (seconds, from the environment): ABLATE_DIST_TIMEOUT_S (default 1800) bounds every
collective, the last resort against a hang; ABLATE_DIST_AGREE_TIMEOUT_S (default 60) is how long a
rank that failed waits for the others to report. If they do not (they are stuck in a collective
the failed rank will never join), it exits with status 1 and torchrun stops its siblings.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT_ENV, AGREE_TIMEOUT_ENV = "ABLATE_DIST_TIMEOUT_S", "ABLATE_DIST_AGREE_TIMEOUT_S"
_CONTROL = None  # the gloo group for decisions and error flags (set by init_distributed)


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


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment variables (0, 1, 0 without)."""
    names = (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))
    try:
        return tuple(int(os.environ.get(k, d)) for k, d in names)
    except ValueError as e:
        raise RuntimeError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {e}") from None


def _seconds(name: str, default: float) -> timedelta:
    try:
        return timedelta(seconds=float(os.environ.get(name, default)))
    except ValueError:
        raise RuntimeError(f"{name} must be a number of seconds, got {os.environ[name]!r}") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Read the torchrun environment and join the process group (once per process; later calls
    only resolve the device). CPU tensors go over gloo, CUDA tensors over nccl."""
    global _CONTROL
    rank, world_size, local_rank = env_world()
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        timeout = _seconds(TIMEOUT_ENV, 1800)
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
        _CONTROL = dist.new_group(backend="gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def shutdown() -> None:
    """Leave the process group (at exit of ablate.py; a no-op without one)."""
    global _CONTROL
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CONTROL = None


def control_group():
    """The gloo group for decisions, error flags and stop agreement (the default group before init)."""
    return _CONTROL if _CONTROL is not None else dist.group.WORLD


class RankFailed(RuntimeError):
    """Raised on every rank when a function run by main_only / agreed failed on some rank."""


def main_only(fn, *args, **kwargs):
    """fn(*args, **kwargs) on rank 0; every rank gets its return value (which must pickle).
    An exception on rank 0 is raised there and as RankFailed (with its message) on the others."""
    if not is_dist():
        return fn(*args, **kwargs)
    box = [None]
    if get_rank() == 0:
        try:
            box = [("ok", fn(*args, **kwargs))]
        except BaseException as e:
            dist.broadcast_object_list([("error", f"{type(e).__name__}: {e}")], src=0, group=control_group())
            raise
    dist.broadcast_object_list(box, src=0, group=control_group())
    kind, value = box[0]
    if kind == "error":
        raise RankFailed(f"rank 0 failed: {value}")
    return value


def agreed(fn, *args, **kwargs):
    """fn(*args, **kwargs) on every rank; if it raises on any rank, every rank raises: the rank's
    own exception where it failed, RankFailed naming the failed ranks elsewhere. A rank that failed
    while the others are stuck in a collective it will never join exits (status 1) after
    ABLATE_DIST_AGREE_TIMEOUT_S; torchrun then stops the others."""
    if not is_dist():
        return fn(*args, **kwargs)
    error = None
    try:
        value = fn(*args, **kwargs)
    except BaseException as e:
        error, value = e, None
    flag = torch.tensor([0.0 if error is None else 1.0])
    work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=control_group(), async_op=True)
    if error is None:
        work.wait()
    else:
        try:
            work.wait(timeout=_seconds(AGREE_TIMEOUT_ENV, 60))
        except RuntimeError:
            traceback.print_exception(error)
            print(f"rank {get_rank()}: {type(error).__name__}: {error}. The other ranks are stuck in a "
                  "collective this rank left; exiting so that the launcher stops them.",
                  file=sys.stderr, flush=True)  # fmt: skip
            os._exit(1)
    if flag.item() == 0:
        return value
    message = None if error is None else f"{type(error).__name__}: {error}"
    errors = all_gather_object(message, group=control_group())
    if error is not None:
        raise error
    failed = "; ".join(f"rank {r}: {e}" for r, e in enumerate(errors) if e is not None)
    raise RankFailed(failed)


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


def all_gather_object(obj, group=None):
    """[obj of rank 0, obj of rank 1, ...] (just [obj] without a process group)."""
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=group)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any rank (so all ranks stop together)."""
    if not is_dist():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class ShardedSampler(torch.utils.data.Sampler):
    """A seeded permutation per epoch, dealt round-robin over ranks (like DistributedSampler).

    The order depends only on (seed, epoch), so a resumed run sees exactly the same order. Rank r
    takes positions r, r + W, r + 2W, ... (W = world size), so with b samples per device the
    ranks' k-th batches together hold positions [k*b*W, (k+1)*b*W): optimizer update u covers
    positions [u*G, (u+1)*G) of the permutation (G = global batch) for ANY world size and
    accumulation. That is what lets a run resume mid-epoch with another number of processes.
    ``set_epoch(epoch, skip=k)`` drops this rank's first k indices (k = positions done / W), which is
    how a mid-epoch resume skips the batches it already trained on without loading them.

    total: positions used per epoch (training: whole global batches, a multiple of W). None: all n,
    padded by wrap-around to a multiple of W when pad (evaluation passes pad=False and shuffle=False
    so summed metrics count every sample exactly once).
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle=True, pad=True,
                 total: int | None = None):  # fmt: skip
        if total is not None and (total > n or total % world_size):
            raise ValueError(f"total={total} must be <= n={n} and a multiple of the world size {world_size}")
        self.n, self.rank, self.world_size, self.total = n, rank, world_size, total
        self.seed, self.shuffle, self.pad = seed, shuffle, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def full_length(self) -> int:
        """Indices this rank sees in a whole epoch (ignoring skip)."""
        if self.total is not None:
            return self.total // self.world_size
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
        if self.total is not None:
            order = order[: self.total]
        elif self.pad:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order += order[: total - self.n]
        shard = order[self.rank :: self.world_size]
        return iter(shard[self.skip :])
