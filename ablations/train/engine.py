"""One training epoch and one evaluation pass. Generic over the model: the caller passes
``loss_fn(model, x, y) -> scalar loss`` (MAE: the reconstruction loss; classifiers: the criterion
on the logits), so pretraining, finetuning and supervised training share this loop.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ablations.train.distributed import all_gather_object, all_reduce_sum
from ablations.train.optim import set_lr


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the run stops (the last checkpoint is untouched and resumable)."""


def apply_mixup(mixup_fn, x: torch.Tensor, y: torch.Tensor):
    """timm's Mixup/CutMix assumes (B, C, H, W). For video (B, C, T, H, W), fold time into
    channels so CutMix cuts the same box out of every frame, then unfold."""
    if x.ndim == 5:
        b, c, t, h, w = x.shape
        x, y = mixup_fn(x.reshape(b, c * t, h, w), y)
        return x.reshape(b, c, t, h, w), y
    return mixup_fn(x, y)


class LossMeter:
    """Per-step losses summed on the device, read back (one host sync) only at log intervals and
    checkpoints, so the hot loop never waits for the device.

    totals: {"loss_sum", "count"} host floats for the epoch (what checkpoints hold), brought up to
    date by `sync`. A non-finite loss is remembered (first step, value) and raised by `sync` on
    every rank together.
    """

    def __init__(self, totals: dict, device: torch.device, phase: str = "train", epoch: int = 0):
        self.totals, self.device, self.phase, self.epoch = totals, device, phase, epoch
        self.pending = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, steps since sync
        self.window = torch.zeros(2, dtype=torch.float64, device=device)  # since the last log record
        self.bad = torch.tensor([-1.0, 0.0], dtype=torch.float64, device=device)  # first bad step, value

    def add(self, loss: torch.Tensor, step: int) -> None:
        value = loss.detach().to(torch.float64)
        first = ~torch.isfinite(value) & (self.bad[0] < 0)
        self.bad = torch.where(first, torch.stack([value.new_tensor(float(step)), value]), self.bad)
        one = torch.stack([value, torch.ones_like(value)])
        self.pending += one
        self.window += one

    def sync(self, with_window: bool = False) -> tuple[float, float] | None:
        """Add the pending losses to totals; raise NonFiniteLossError if any rank saw one. With
        with_window: returns the window's (loss sum, steps) summed over ranks, and restarts it."""
        shared = torch.cat([(self.bad[:1] >= 0).double(), self.window if with_window else self.window[:0]])
        local = torch.cat([self.pending, self.bad]).tolist()
        shared = all_reduce_sum(shared).tolist()  # one collective, every rank at the same step
        self.pending.zero_()
        self.totals["loss_sum"] += local[0]
        self.totals["count"] += int(local[1])
        if shared[0] > 0:
            where = f"step {int(local[2])}" if local[2] >= 0 else "another rank"
            value = local[3] if local[2] >= 0 else float("nan")
            raise NonFiniteLossError(
                f"non-finite loss ({value}) in phase '{self.phase}', epoch {self.epoch}, {where}. "
                "The last checkpoint-last.pth is intact and resumable. Try a lower lr/blr, more "
                "warmup, gradient clipping (clip_grad), or runtime.amp=bf16 / none instead of fp16."
            )
        if with_window:
            self.window.zero_()
            return shared[1], shared[2]
        return None


def train_one_epoch(
    model: torch.nn.Module,
    loss_fn,
    loader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    *,
    epoch: int,
    steps_per_epoch: int,
    lr_fn,
    device: torch.device,
    start_step: int = 0,
    accum_iter: int = 1,
    clip_grad: float | None = None,
    amp_dtype: torch.dtype | None = None,
    mixup_fn=None,
    meter: dict | LossMeter | None = None,
    after_update=None,
    log=None,
    log_every: int = 10,
    progress: bool | str = True,
    phase: str = "train",
    epochs: int | None = None,
    later_items: int = 0,
) -> dict:
    """Train from data step `start_step` to the end of the epoch.

    lr_fn(update_index) gives the lr; it is set at the start of each accumulation cycle.
    meter: {"loss_sum", "count"} running totals for this epoch (kept in mid-epoch checkpoints), or
    a LossMeter around them (the caller then syncs it before it checkpoints mid-epoch).
    after_update(steps_done): called after every optimizer update (checkpoints, test hooks).
    log(record): called every `log_every` steps with loss/lr/throughput. The loss is read from
    the device only then, so a non-finite loss stops the run within log_every steps.
    progress: True / "bar": a tqdm bar; "lines": one flushed line per `log_every` steps with loss,
    lr, items/s and ETA (for log files: no carriage returns); False: nothing.
    epochs: the phase's epoch count, for the ETA (None: to the end of this epoch).
    later_items: training items of the run's later phases; the run's ETA counts them at this
    phase's speed (a whole-run estimate: a later phase may run faster or slower per item).
    Returns the totals.
    """
    if not isinstance(meter, LossMeter):
        meter = LossMeter(meter if meter is not None else {"loss_sum": 0.0, "count": 0}, device)
    meter.phase, meter.epoch = phase, epoch
    model.train()
    optimizer.zero_grad(set_to_none=True)
    updates_per_epoch = math.ceil(steps_per_epoch / accum_iter)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    bar = tqdm(total=steps_per_epoch, initial=start_step, disable=progress not in (True, "bar"),
               desc=f"{phase} ep{epoch}", file=sys.__stderr__)  # fmt: skip
    win_n, win_t = 0, time.perf_counter()  # this rank's steps in the log window
    lr = optimizer.param_groups[0]["lr"]

    for step, (x, y) in enumerate(loader, start=start_step):
        if step >= steps_per_epoch:
            break
        boundary = (step + 1) % accum_iter == 0 or step + 1 == steps_per_epoch
        if step % accum_iter == 0:
            lr = lr_fn(epoch * updates_per_epoch + step // accum_iter)
            set_lr(optimizer, lr)

        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if mixup_fn is not None:
            x, y = apply_mixup(mixup_fn, x, y)

        # Between updates DDP must not all-reduce gradients, only accumulate them locally.
        sync = (
            model.no_sync() if isinstance(model, DistributedDataParallel) and not boundary else nullcontext()
        )
        with sync:
            with autocast:
                loss = loss_fn(model, x, y)
            meter.add(loss, step)  # no host sync: read back at the log interval
            scaler.scale(loss / accum_iter).backward()

        if boundary:
            if clip_grad:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        win_n += 1
        bar.update(1)
        if (step + 1) % log_every == 0 or step + 1 == steps_per_epoch:
            loss_sum, n = meter.sync(with_window=True)  # global window mean; stops on a non-finite loss
            dt = time.perf_counter() - win_t
            throughput = n * x.shape[0] / max(dt, 1e-9)  # n: steps summed over ranks
            record = {
                "epoch": epoch,
                "step": epoch * steps_per_epoch + step + 1,
                "loss": loss_sum / n,
                "lr": lr,
                "throughput": throughput,
            }
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", ips=f"{throughput:.0f}")
            if progress == "lines":
                left = steps_per_epoch - step - 1 + ((epochs or epoch + 1) - epoch - 1) * steps_per_epoch
                eta = left * dt / win_n
                run_eta = eta + later_items / max(throughput, 1e-9)
                print(progress_line(phase, record, step + 1, steps_per_epoch, eta, run_eta), flush=True)
            if log is not None:
                log(record)
            win_n, win_t = 0, time.perf_counter()
        if boundary and after_update is not None:
            after_update(step + 1)
    bar.close()
    meter.sync()
    return meter.totals


def progress_line(
    phase: str, record: dict, step: int, steps_per_epoch: int, eta_s: float, run_eta_s: float | None = None
) -> str:
    """'[pretrain] ep 3 step 40/120 loss 0.8123 lr 1.00e-03 812 items/s ETA 00:12:05 (run 01:02:00)'."""
    return (
        f"[{phase}] ep {record['epoch']} step {step}/{steps_per_epoch} loss {record['loss']:.4f} "
        f"lr {record['lr']:.2e} {record['throughput']:.0f} items/s {etas(eta_s, run_eta_s)}"
    )


def etas(phase_s: float, run_s: float | None = None) -> str:
    """'ETA 00:12:05 (run 01:02:00)': the phase's time left, then the whole run's (every phase)."""
    return f"ETA {eta_text(phase_s)}" + ("" if run_s is None else f" (run {eta_text(run_s)})")


def eta_text(seconds: float) -> str:
    """Time left of the phase's training steps: HH:MM:SS, or days beyond one day."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    multi_view: bool | None = None,
    predictions: bool = False,
) -> dict:
    """Top-1/top-5 (percent) and cross-entropy, summed over ranks.

    multi_view: batches are (B, V, C, T, H, W); the softmax is averaged over the V views.
    None guesses from the shape (6-D input = views).
    predictions: also return "predictions" = {"top5": (N, 5) int64 class indices, best first,
    "label": (N,) int64}, numpy arrays in dataset-index order, gathered from every rank (each
    rank's indices are its sampler's order), so they are the same for any world size.
    """
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss_sum, n
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    tops, labels = [], []
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        views = x.ndim == 6 if multi_view is None else multi_view
        if views:
            b, v = x.shape[:2]
            x = x.flatten(0, 1)
        with autocast:
            logits = model(x)
        probs = logits.float().softmax(-1)
        if views:
            probs = probs.view(b, v, -1).mean(1)
        top = probs.topk(min(5, probs.shape[-1]), dim=-1).indices
        totals[0] += (top[:, 0] == y).sum()
        totals[1] += (top == y[:, None]).any(-1).sum()
        totals[2] += F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum")
        totals[3] += y.numel()
        if predictions:
            tops.append(top.cpu())
            labels.append(y.cpu())
    all_reduce_sum(totals)
    n = max(totals[3].item(), 1.0)
    out = {
        "top1": 100 * totals[0].item() / n,
        "top5": 100 * totals[1].item() / n,
        "val_loss": totals[2].item() / n,
        "val_samples": int(totals[3].item()),
    }
    if predictions:
        out["predictions"] = gather_predictions(list(loader.sampler), tops, labels)
    return out


def gather_predictions(indices: list[int], tops: list[torch.Tensor], labels: list[torch.Tensor]) -> dict:
    """Every rank's (dataset index, top-k, label), put in dataset-index order on every rank.

    indices: this rank's dataset indices in the order its loader yielded them (the sampler's
    order); tops: (b, k) per batch; labels: (b,) per batch.
    """
    k = tops[0].shape[1] if tops else 0
    local = (
        torch.as_tensor(indices, dtype=torch.int64),
        torch.cat(tops) if tops else torch.zeros(0, k, dtype=torch.int64),
        torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64),
    )
    if len(local[0]) != len(local[2]):
        raise RuntimeError(f"the sampler gave {len(local[0])} indices but the loader {len(local[2])} samples")
    parts = all_gather_object(local)
    index = torch.cat([p[0] for p in parts])
    order = index.argsort()
    if not torch.equal(index[order], torch.arange(len(index))):
        raise RuntimeError("validation shards overlap or leave samples out; use a non-padding sampler")
    return {
        "top5": torch.cat([p[1] for p in parts])[order].numpy(),
        "label": torch.cat([p[2] for p in parts])[order].numpy(),
    }
