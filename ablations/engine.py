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

from ablations.distributed import all_reduce_sum, any_rank, get_world_size
from ablations.optim import set_lr


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
    meter: dict | None = None,
    after_update=None,
    log=None,
    log_every: int = 10,
    progress: bool | str = True,
    phase: str = "train",
    epochs: int | None = None,
) -> dict:
    """Train from data step `start_step` to the end of the epoch.

    lr_fn(update_index) gives the lr; it is set at the start of each accumulation cycle.
    meter: {"loss_sum", "count"} running totals for this epoch (kept in mid-epoch checkpoints).
    after_update(steps_done): called after every optimizer update (checkpoints, test hooks).
    log(record): called every `log_every` steps with loss/lr/throughput.
    progress: True / "bar": a tqdm bar; "lines": one flushed line per `log_every` steps with loss,
    lr, items/s and ETA (for log files: no carriage returns); False: nothing.
    epochs: the phase's epoch count, for the ETA (None: to the end of this epoch).
    Returns the meter.
    """
    meter = meter if meter is not None else {"loss_sum": 0.0, "count": 0}
    model.train()
    optimizer.zero_grad(set_to_none=True)
    updates_per_epoch = math.ceil(steps_per_epoch / accum_iter)
    world = get_world_size()
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    bar = tqdm(total=steps_per_epoch, initial=start_step, disable=progress not in (True, "bar"),
               desc=f"{phase} ep{epoch}", file=sys.__stderr__)  # fmt: skip
    win_loss, win_n, win_t = 0.0, 0, time.perf_counter()
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
            loss_value = loss.item()
            # Checked on every rank together, so no rank is left waiting in a collective.
            if any_rank(not math.isfinite(loss_value), device):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss_value}) in phase '{phase}', epoch {epoch}, step {step}. "
                    "The last checkpoint-last.pth is intact and resumable. Try a lower lr/blr, more "
                    "warmup, gradient clipping (clip_grad), or runtime.amp=bf16 / none instead of fp16."
                )
            scaler.scale(loss / accum_iter).backward()

        if boundary:
            if clip_grad:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        meter["loss_sum"] += loss_value
        meter["count"] += 1
        win_loss += loss_value
        win_n += 1
        bar.update(1)
        if (step + 1) % log_every == 0 or step + 1 == steps_per_epoch:
            # Average the window's loss over ranks so the log shows the global loss.
            t = all_reduce_sum(torch.tensor([win_loss, win_n], dtype=torch.float64, device=device))
            dt = time.perf_counter() - win_t
            throughput = win_n * x.shape[0] * world / max(dt, 1e-9)
            record = {
                "epoch": epoch,
                "step": epoch * steps_per_epoch + step + 1,
                "loss": (t[0] / t[1]).item(),
                "lr": lr,
                "throughput": throughput,
            }
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", ips=f"{throughput:.0f}")
            if progress == "lines":
                left = steps_per_epoch - step - 1 + ((epochs or epoch + 1) - epoch - 1) * steps_per_epoch
                print(progress_line(phase, record, step + 1, steps_per_epoch, left * dt / win_n), flush=True)
            if log is not None:
                log(record)
            win_loss, win_n, win_t = 0.0, 0, time.perf_counter()
        if boundary and after_update is not None:
            after_update(step + 1)
    bar.close()
    return meter


def progress_line(phase: str, record: dict, step: int, steps_per_epoch: int, eta_s: float) -> str:
    """'[pretrain] ep 3 step 40/120 loss 0.8123 lr 1.00e-03 812 items/s ETA 00:12:05'."""
    return (
        f"[{phase}] ep {record['epoch']} step {step}/{steps_per_epoch} loss {record['loss']:.4f} "
        f"lr {record['lr']:.2e} {record['throughput']:.0f} items/s ETA {eta_text(eta_s)}"
    )


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
) -> dict:
    """Top-1/top-5 (percent) and cross-entropy, summed over ranks.

    multi_view: batches are (B, V, C, T, H, W); the softmax is averaged over the V views.
    None guesses from the shape (6-D input = views).
    """
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss_sum, n
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
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
    all_reduce_sum(totals)
    n = max(totals[3].item(), 1.0)
    return {
        "top1": 100 * totals[0].item() / n,
        "top5": 100 * totals[1].item() / n,
        "val_loss": totals[2].item() / n,
        "val_samples": int(totals[3].item()),
    }
