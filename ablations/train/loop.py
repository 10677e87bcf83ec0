"""The generic epoch loop of one phase: any model, any dataset, any loss.

`fit` reads top to bottom like a training loop:

    loop  = setup(...)            device, AMP, optimizer, scaler, loaders, lr schedule
    state = resume(loop)          position, meter, history from checkpoint-last.pth (if any;
                                  checkpoint-prev.pth if the last one is damaged)
    for epoch in ...:
        train_epoch(loop, ...)    engine.train_one_epoch from the resumed step; mid-epoch saves
        end_epoch(loop, ...)      all-reduced loss, validation, log record, epoch checkpoint
    return phase_result(...)      the metrics written to done.json

phase_cfg["batch_size"] is the GLOBAL batch per optimizer update; `setup` splits it into a per-process
batch and gradient accumulation (ablations.train.batching.plan_batch, capped by
runtime.max_batch_per_device). The position a checkpoint stores is (epoch, optimizer updates done
inside the epoch); the data order depends only on (seed, epoch) and update u always trains on
positions [u*G, (u+1)*G) of it (distributed.ShardedSampler), so a resumed run skips exactly the
samples it already trained on, with the same or another number of processes. With repeated
sampling (aug.repeated = R) the batch still counts clips; positions are items, R clips each.

Every log record also goes to TensorBoard (ablations/store/tblog.py, rank 0, runtime.tensorboard).

Stopping (interrupt.StopRequest: SIGINT, SIGTERM, SIGUSR1): after every update all ranks agree
whether any of them was signalled; if so they checkpoint that update and raise interrupt.Stopped.
Only the epoch loop listens: a signal during setup or resume stops at once (interrupt.py).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ablations.data.common import flatten_repeated, repeats
from ablations.store import tblog
from ablations.train.batching import plan_batch
from ablations.train.checkpoint import (
    get_rng_state,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from ablations.train.distributed import DistInfo, ShardedSampler, all_gather_object, barrier, init_distributed
from ablations.train.engine import LossMeter, etas, evaluate, train_one_epoch
from ablations.train.interrupt import Stopped, StopRequest
from ablations.train.memory_plan import phase_runtime
from ablations.train.optim import build_optimizer, lr_at, resolve_lr
from models.compile import compile_for_training

CKPT = "checkpoint-last.pth"
RUNTIME_DEFAULTS = {"device": "auto", "amp": "bf16", "log_every": 10, "eval_every": 1, "tensorboard": False}


@dataclass
class Loop:
    """Everything one phase's epoch loop uses; built once by `setup`."""

    model: torch.nn.Module  # the raw model (checkpoints hold its state_dict)
    net: torch.nn.Module  # what trains: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: ShardedSampler
    loader: DataLoader
    loader_gen: torch.Generator  # reseeded per epoch: fixes worker seeds without the global RNG
    val_loader: DataLoader | None
    dist: DistInfo
    amp_dtype: torch.dtype | None
    phase_cfg: dict
    runtime: dict
    phase_dir: Path
    phase: str
    seed: int
    epochs: int
    global_batch: int  # samples per optimizer update, over all processes (the recipe's batch_size)
    batch_size: int  # per process, per data step (clips/images: with aug.repeated R, R per item)
    items_per_step: int  # dataset items per process and data step: batch_size // R
    accum_iter: int  # data steps per update (derived: global = batch_size * accum_iter * world)
    steps_per_epoch: int  # data steps per epoch and process
    updates_per_epoch: int  # optimizer updates per epoch
    base_lr: float
    warmup_updates: int
    min_lr: float
    log_path: Path = field(init=False)
    # The position, set by `resume`: {epoch, step, meter, history, elapsed_s}, and the clock's
    # start (shifted back by the time of earlier segments, so train time spans resumes).
    state: dict = field(default_factory=dict)
    t0: float = 0.0
    tb: object = None  # TensorBoard SummaryWriter (rank 0, runtime.tensorboard), set by `resume`
    later_items: int = 0  # training items of the run's later phases (epochs x items), for the run's ETA

    def __post_init__(self) -> None:
        self.log_path = self.phase_dir / "log.jsonl"

    def lr(self, update: int) -> float:
        """Warmup + cosine, per optimizer update."""
        return lr_at(
            update,
            base_lr=self.base_lr,
            min_lr=self.min_lr,
            warmup_updates=self.warmup_updates,
            total_updates=self.epochs * self.updates_per_epoch,
        )

    def log(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.log_path, "a") as f:
                f.write(json.dumps({"phase": self.phase, **record}) + "\n")
            tblog.write_record(self.tb, record)


def fresh_meter() -> dict:
    return {"loss_sum": 0.0, "count": 0}


def fit(
    model: torch.nn.Module,
    loss_fn,
    train_set,
    val_set,
    phase_cfg: dict,
    *,
    phase_dir: Path,
    phase: str = "train",
    seed: int = 0,
    runtime: dict | None = None,
    mixup_fn=None,
    multi_view: bool = False,
    num_workers: int = 0,
    progress: bool = True,
    after_update=None,
    later: tuple = (),
) -> dict:
    """Train `model` for phase_cfg["epochs"], resuming from phase_dir/checkpoint-last.pth if present.

    loss_fn(model, x, y) -> scalar loss. after_update(epoch, steps_done) is called after each
    optimizer update (tests use it to interrupt a run). later: (epochs, items or None = as many as
    this phase's) of the run's phases after this one, for the run's ETA. Returns the phase metrics.
    """
    loop = setup(model, train_set, val_set, phase_cfg, phase_dir, phase, seed, runtime, num_workers)
    loop.later_items = sum(int(e) * int(n or len(train_set)) for e, n in later)
    state = resume(loop)
    with StopRequest() as stop, stop.listening():  # a signal waits for the update in flight
        for epoch in range(state["epoch"], loop.epochs):
            start_step = state["step"] if epoch == state["epoch"] else 0
            meter = dict(state["meter"]) if epoch == state["epoch"] else fresh_meter()
            t_epoch = time.perf_counter()
            train_epoch(loop, loss_fn, epoch, start_step, meter, mixup_fn, stop, after_update, progress)
            dt = time.perf_counter() - t_epoch
            end_epoch(loop, epoch, start_step, meter, dt, multi_view, progress)
            signal = stop.agreed()
            if signal:
                raise Stopped(f"{phase}: stopped after epoch {epoch}; checkpoint saved", signal)
    return phase_result(loop)


# ---------------------------------------------------------------- setup and resume


def resolve_amp(amp: str | None, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler). bf16 needs no scaler; fp16 always runs with one,
    on the CPU too (torch.amp.GradScaler("cpu"): the same code path as CUDA fp16)."""
    amp = (amp or "none").lower()
    if amp in ("none", "fp32", "false"):
        return None, False
    if amp == "fp16":
        return torch.float16, True
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.warn("this GPU lacks bf16; using fp16 autocast with a GradScaler", stacklevel=2)
            return torch.float16, True
        return torch.bfloat16, False
    raise ValueError(f"runtime.amp must be bf16, fp16 or none, got {amp!r}")


def setup(model, train_set, val_set, phase_cfg, phase_dir, phase, seed, runtime, num_workers) -> Loop:
    """Device, AMP, optimizer, scaler, sharded loaders and the lr schedule of one phase."""
    rt = {**RUNTIME_DEFAULTS, **(runtime or {})}
    dist = init_distributed(rt["device"])
    bs, accum_iter, grad_ckpt = phase_split(phase_cfg, rt, phase, dist.world_size)  # the memory plan's
    phase_dir = Path(phase_dir)
    if dist.is_main:
        phase_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    amp_dtype, use_scaler = resolve_amp(rt["amp"], dist.device)
    epochs, global_batch = int(phase_cfg["epochs"]), int(phase_cfg["batch_size"])
    # Repeated sampling (aug.repeated = R): an item holds R augmented clips, so the batch still
    # counts clips and a step loads bs // R items. An epoch stays N clips (N / R items from a
    # fresh shuffle: the paper's "effective epochs", as DeiT's repeated-augmentation sampler).
    repeated = repeats(phase_cfg.get("aug"))
    updates_per_epoch = len(train_set) // global_batch  # whole global batches only
    if updates_per_epoch == 0:
        raise ValueError(
            f"{phase}: {len(train_set)} training samples cannot fill one global batch of {global_batch}; "
            f"lower --set {phase}.batch_size or use more data"
        )

    model.to(dist.device)
    if grad_ckpt:
        model.set_grad_checkpointing(grad_ckpt)
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest conv kernels once
        torch.cuda.reset_peak_memory_stats(dist.device)  # done.json's peak_memory_gib is this phase's
    base_lr = resolve_lr(phase_cfg)
    optimizer = build_optimizer(model, phase_cfg, base_lr)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=use_scaler)

    total = updates_per_epoch * global_batch // repeated  # items
    sampler = ShardedSampler(len(train_set), dist.rank, dist.world_size, seed=seed, total=total)
    steps_per_epoch = updates_per_epoch * accum_iter
    pin = dist.device.type == "cuda"
    workers = loader_options(num_workers, pin)
    loader_gen = torch.Generator()
    loader = DataLoader(
        train_set, batch_size=bs // repeated, sampler=sampler, drop_last=True, generator=loader_gen,
        collate_fn=flatten_repeated if repeated > 1 else None, **workers,
    )  # fmt: skip
    val = val_loader(val_set, bs, dist, num_workers) if val_set is not None else None
    net = model
    if dist.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[dist.device.index] if pin else None)
    # checkpoints keep saving `model`, whose parameters a compiled net shares
    net = compile_for_training(model, net, rt.get("compile") or False)
    return Loop(
        model=model, net=net, optimizer=optimizer, scaler=scaler, sampler=sampler, loader=loader,
        loader_gen=loader_gen, val_loader=val, dist=dist, amp_dtype=amp_dtype,
        phase_cfg=phase_cfg, runtime=rt, phase_dir=phase_dir, phase=phase, seed=seed, epochs=epochs,
        global_batch=global_batch, batch_size=bs, items_per_step=bs // repeated, accum_iter=accum_iter,
        steps_per_epoch=steps_per_epoch,
        updates_per_epoch=updates_per_epoch, base_lr=base_lr,
        warmup_updates=int(round(float(phase_cfg.get("warmup_epochs") or 0) * updates_per_epoch)),
        min_lr=float(phase_cfg.get("min_lr") or 0.0),
    )  # fmt: skip


def phase_split(phase_cfg: dict, runtime: dict, phase: str, world_size: int) -> tuple[int, int, bool | int]:
    """(per-process batch, accumulation steps, checkpointed blocks) a phase trains with: the global
    batch split over world_size under the memory plan's cap (runtime.plan) or runtime's own. What
    --dry-run and --plan preview is checked against this (tests/test_preview.py)."""
    cap, grad_ckpt = phase_runtime(runtime, phase)
    bs, accum = plan_batch(int(phase_cfg["batch_size"]), world_size, cap, repeats(phase_cfg.get("aug")))
    return bs, accum, grad_ckpt


def loader_options(num_workers: int, pin: bool) -> dict:
    """DataLoader keywords. Workers stay alive across epochs and keep batches queued (their RNG
    then runs on across epochs: resume is exact in data order, not in augmentation draws)."""
    options = dict(num_workers=num_workers, pin_memory=pin)
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options


def val_loader(val_set, batch_size: int, dist: DistInfo, num_workers: int = 0) -> DataLoader:
    """Sharded without padding (rank r takes samples r, r + world, ...): every sample counted once."""
    sampler = ShardedSampler(len(val_set), dist.rank, dist.world_size, shuffle=False, pad=False)
    options = loader_options(num_workers, dist.device.type == "cuda")
    return DataLoader(val_set, batch_size=batch_size, sampler=sampler, **options)


def resume(loop: Loop) -> dict:
    """The loop position: fresh, or restored (with model, optimizer, scaler, RNG) from the checkpoint."""
    state = {"epoch": 0, "step": 0, "meter": fresh_meter(), "history": [], "elapsed_s": 0.0}
    ckpt_path = loop.phase_dir / CKPT
    ckpt = load_checkpoint(ckpt_path, log=print if loop.dist.is_main else lambda _: None)
    loop.state = state
    if ckpt is None:  # a fresh start: what an attempt killed before its first checkpoint logged goes
        loop.t0 = time.perf_counter()
        redone = loop.dist.is_main and loop.log_path.exists()
        if redone:
            loop.log_path.unlink()
        if loop.dist.is_main:
            loop.tb = tblog.writer(
                loop.phase_dir, loop.runtime["tensorboard"], purge_step=0 if redone else None
            )
        return state
    d = loop.dist
    restore_training_state(ckpt, loop.model, loop.optimizer, loop.scaler, d.rank, d.world_size, loop.seed)
    state.update({k: ckpt[k] for k in ("epoch", "history", "elapsed_s")})
    # Updates done in the epoch -> this process's data steps (checkpoints before "update": 1 process).
    state["step"] = ckpt.get("update", ckpt["step"] // loop.accum_iter) * loop.accum_iter
    state["meter"] = resumed_meter(ckpt, d.rank, d.world_size)
    loop.t0 = time.perf_counter() - state["elapsed_s"]
    if d.is_main and loop.log_path.exists():  # drop log lines written after the checkpoint (redone)
        with open(loop.log_path, "r+b") as f:
            f.truncate(min(ckpt["log_bytes"], loop.log_path.stat().st_size))  # never pad with zeros
    if d.is_main:  # events past the checkpoint are redone: hide them as the log truncation does
        purge = state["epoch"] * loop.steps_per_epoch + state["step"] + 1  # first step redone
        loop.tb = tblog.writer(loop.phase_dir, loop.runtime["tensorboard"], purge_step=purge)
        print(f"[{loop.phase}] resumed from {ckpt_path}: epoch {state['epoch']}, step {state['step']}")
    return state


def resumed_meter(ckpt: dict, rank: int, world_size: int) -> dict:
    """This rank's running loss totals of the epoch: its own at the same world size; at another,
    rank 0 carries the sum over the old ranks (so the epoch's mean loss is unchanged)."""
    meters = ckpt.get("meters") or [ckpt["meter"]]
    if len(meters) == world_size:
        return dict(meters[rank])
    if rank:
        return fresh_meter()
    return {"loss_sum": sum(m["loss_sum"] for m in meters), "count": sum(m["count"] for m in meters)}


def save(loop: Loop, epoch: int, step: int, meter: dict) -> None:
    """Checkpoint position (epoch, step: data steps of this process, at an update boundary) with
    every rank's RNG (ranks draw different masks) and running loss totals."""
    gathered = all_gather_object((get_rng_state(), dict(meter)))
    rng, meters = [g[0] for g in gathered], [g[1] for g in gathered]
    if loop.dist.is_main:
        extra = {"epoch": epoch, "step": step, "update": step // loop.accum_iter, "meters": meters,
                 "meter": dict(meter), "history": loop.state["history"],
                 "elapsed_s": time.perf_counter() - loop.t0, "world_size": loop.dist.world_size,
                 "global_batch": loop.global_batch,
                 "phase": loop.phase,
                 "log_bytes": loop.log_path.stat().st_size if loop.log_path.exists() else 0}  # fmt: skip
        ckpt = training_state(loop.model, loop.optimizer, loop.scaler, rng=rng, **extra)
        save_checkpoint(ckpt, loop.phase_dir / CKPT)


# ---------------------------------------------------------------- one epoch


def train_epoch(loop, loss_fn, epoch, start_step, meter, mixup_fn, stop, after_update, progress) -> None:
    """Train one epoch from `start_step`; periodic (runtime.ckpt_every_steps) and on-request saves."""
    loop.sampler.set_epoch(epoch, skip=start_step * loop.items_per_step)
    loop.loader_gen.manual_seed(loop.seed * 100_003 + epoch)
    ckpt_every = int(loop.runtime.get("ckpt_every_steps") or 0)
    last_saved = start_step
    losses = LossMeter(meter, loop.dist.device)  # summed on the device; synced before a save

    def on_update(steps_done: int) -> None:
        nonlocal last_saved
        inside = steps_done < loop.steps_per_epoch  # the epoch end saves anyway
        if ckpt_every and steps_done - last_saved >= ckpt_every and inside:
            losses.sync()
            save(loop, epoch, steps_done, meter)
            last_saved = steps_done
        if after_update is not None:
            after_update(epoch, steps_done)
        signal = stop.agreed() if inside else None  # a collective: every rank, every update
        if signal:
            if last_saved != steps_done:  # the periodic save may just have written it
                losses.sync()
                save(loop, epoch, steps_done, meter)
            where = f"epoch {epoch}, step {steps_done}"
            raise Stopped(f"{loop.phase}: stopped at {where}; checkpoint saved", signal)

    train_one_epoch(
        loop.net, loss_fn, loop.loader, loop.optimizer, loop.scaler,
        epoch=epoch, steps_per_epoch=loop.steps_per_epoch, lr_fn=loop.lr, device=loop.dist.device,
        start_step=start_step, accum_iter=loop.accum_iter, clip_grad=loop.phase_cfg.get("clip_grad"),
        amp_dtype=loop.amp_dtype, mixup_fn=mixup_fn, meter=losses, after_update=on_update,
        log=loop.log, log_every=int(loop.runtime["log_every"]), phase=loop.phase, epochs=loop.epochs,
        later_items=loop.later_items,
        progress=progress if loop.dist.is_main else False,
    )  # fmt: skip


def end_epoch(loop, epoch, start_step, meter, epoch_time_s, multi_view, progress) -> dict:
    """Epoch record (global train loss, validation when due), history, and the epoch checkpoint."""
    d = loop.dist
    totals = torch.tensor([meter["loss_sum"], meter["count"]], dtype=torch.float64, device=d.device)
    if d.world_size > 1:
        torch.distributed.all_reduce(totals)
    record = {
        "epoch": epoch,
        "step": (epoch + 1) * loop.steps_per_epoch,
        "train_loss": (totals[0] / totals[1]).item(),
        "lr": loop.lr((epoch + 1) * loop.updates_per_epoch - 1),
        "epoch_time_s": epoch_time_s,
        "throughput": (loop.steps_per_epoch - start_step)
        * loop.batch_size
        * d.world_size
        / max(epoch_time_s, 1e-9),
    }
    last = epoch + 1 == loop.epochs
    if loop.val_loader is not None and ((epoch + 1) % int(loop.runtime["eval_every"]) == 0 or last):
        record.update(evaluate(loop.net, loop.val_loader, d.device, loop.amp_dtype, multi_view=multi_view))
    loop.log(record)
    keys = ("epoch", "train_loss", "top1", "top5", "val_loss")
    loop.state["history"].append({k: record[k] for k in keys if k in record})
    save(loop, epoch + 1, 0, fresh_meter())
    if d.is_main and progress:
        shown = {k: round(v, 4) for k, v in record.items() if isinstance(v, float)}
        eta = (loop.epochs - epoch - 1) * epoch_time_s
        run_eta = eta + loop.later_items / max(record["throughput"], 1e-9)
        print(f"[{loop.phase}] epoch {epoch}/{loop.epochs}: {shown} {etas(eta, run_eta)}", flush=True)
    return record


# ---------------------------------------------------------------- result


def phase_result(loop: Loop) -> dict:
    """The phase metrics written to done.json: last/best evaluation, first/last train loss."""
    if loop.tb is not None:
        loop.tb.close()
    hist = loop.state["history"]
    evals = [h for h in hist if "top1" in h]
    return {
        "phase": loop.phase,
        "epochs": loop.epochs,
        "train_time_s": time.perf_counter() - loop.t0,
        "loss_first": hist[0]["train_loss"] if hist else None,
        "loss_last": hist[-1]["train_loss"] if hist else None,
        "top1": evals[-1]["top1"] if evals else None,
        "top5": evals[-1]["top5"] if evals else None,
        "best_top1": max(h["top1"] for h in evals) if evals else None,
        "val_loss": evals[-1].get("val_loss") if evals else None,
        "lr": loop.base_lr,
        "steps_per_epoch": loop.steps_per_epoch,
        "world_size": loop.dist.world_size,
        "global_batch": loop.global_batch,
        "batch_per_device": loop.batch_size,
        "accum_iter": loop.accum_iter,
        # the phase's peak of allocated GPU memory (what the memory plan estimates; None on the CPU)
        "peak_memory_gib": torch.cuda.max_memory_allocated(loop.dist.device) / 2**30
        if loop.dist.device.type == "cuda"
        else None,
    }
