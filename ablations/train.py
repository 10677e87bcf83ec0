"""The phase pipeline: mode "mae" = pretrain (sparse MAE) then finetune; "supervised" = one phase.

    run_dir/
      pretrain/   checkpoint-last.pth  log.jsonl  encoder.pth  done.json     (mode mae)
                  reconstructions.png   (pixel target: input / masked / reconstruction)
      finetune/   checkpoint-last.pth  log.jsonl  predictions.npz  done.json (mode mae)
      supervised/ checkpoint-last.pth  log.jsonl  predictions.npz  done.json (mode supervised)

checkpoint-last.pth is rewritten (atomically) after every epoch and, with runtime.ckpt_every_steps
= N, every N data steps inside an epoch (at accumulation boundaries). log.jsonl has one JSON object
per line: step records {phase, epoch, step, loss, lr, throughput} and epoch records {phase, epoch,
step, train_loss, lr, epoch_time_s, throughput, top1, top5, val_loss, val_samples}. done.json holds
the phase's final metrics; predictions.npz the final model's per-sample val top-5 and labels
(ablations/predictions.py), written before done.json. A phase with done.json is never rerun, and an
interrupted phase resumes from its checkpoint. encoder.pth (MAE encoder weights) is what the
finetune phase starts from.
Ctrl-C (single process) lets the update in flight finish, checkpoints that exact step and raises
interrupt.Stopped; a second Ctrl-C stops at once (resume then redoes the steps since the last
checkpoint).

Resume is bit-exact on CPU with data.num_workers = 0 (same data order, RNG streams, optimizer and
schedule position). With worker processes the data order is still exact but the augmentation
draws of a resumed epoch differ; on CUDA, non-deterministic kernels can also differ.

`fit` is the generic epoch loop (any model, any dataset, any loss); the small `build_*`
factories below are the only places that touch models / MAE / data.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ablations.checkpoint import (
    get_rng_state,
    load_checkpoint,
    restore_training_state,
    save_atomic,
    seed_everything,
    training_state,
    write_json_atomic,
)
from ablations.distributed import DistInfo, ShardedSampler, all_gather_object, barrier, init_distributed
from ablations.engine import evaluate, train_one_epoch
from ablations.interrupt import Stopped, StopRequest
from ablations.optim import build_optimizer, lr_at, resolve_lr
from ablations.predictions import FILE as PREDICTIONS
from ablations.predictions import save_predictions

CKPT = "checkpoint-last.pth"

# ---------------------------------------------------------------- factories (the real builders)


def data_info(cfg: dict) -> dict:
    from ablations.data import dataset_info

    return dataset_info(cfg["data"])


def build_data(cfg: dict, split: str, aug: dict | None):
    from ablations.data import build_dataset

    return build_dataset(cfg["data"], split=split, aug=aug)


def build_mae_model(cfg: dict) -> torch.nn.Module:
    from models.mae import build_mae

    return build_mae(cfg["model"], cfg["mae"], drop_path=cfg["pretrain"].get("drop_path", 0.0))


def build_classifier(cfg: dict, phase_cfg: dict, num_classes: int) -> torch.nn.Module:
    import models

    m = cfg["model"]
    overrides = dict(m.get("overrides") or {})
    # The phase's regularisation wins over the row's defaults.
    overrides["drop_path"] = phase_cfg.get("drop_path", 0.0)
    if phase_cfg.get("head_init_scale") is not None:
        overrides["head_init_scale"] = phase_cfg["head_init_scale"]
    if phase_cfg.get("dropout") is not None:
        overrides["drop_rate"] = phase_cfg["dropout"]  # ModelConfig calls head dropout drop_rate
    return models.build(
        m["size"],
        step=m.get("step", "f"),
        modality=m.get("modality", "image"),
        num_classes=num_classes,
        **overrides,
    )


def load_encoder(model: torch.nn.Module, path: Path) -> None:
    """Load MAE encoder weights into a classifier; only the head may be missing."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    not_head = [k for k in missing if "head" not in k]
    if not_head:
        raise RuntimeError(f"pretrained encoder {path} lacks non-head weights: {not_head[:8]}")
    if unexpected:
        warnings.warn(
            f"ignored {len(unexpected)} unexpected encoder keys, e.g. {unexpected[:4]}", stacklevel=2
        )


def build_criterion(phase_cfg: dict, num_classes: int):
    """(criterion, mixup_fn or None): SoftTargetCE under Mixup/CutMix (which also smooths labels),
    else label-smoothing CE, else plain CE."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    mixup, cutmix = phase_cfg.get("mixup") or 0.0, phase_cfg.get("cutmix") or 0.0
    smoothing = phase_cfg.get("smoothing") or 0.0
    if mixup > 0 or cutmix > 0:
        mixup_fn = Mixup(
            mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=smoothing, num_classes=num_classes
        )
        return SoftTargetCrossEntropy(), mixup_fn
    if smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=smoothing), None
    return torch.nn.CrossEntropyLoss(), None


def resolve_amp(amp: str | None, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler). bf16 needs no scaler; fp16 only on CUDA."""
    amp = (amp or "none").lower()
    if amp in ("none", "fp32", "false"):
        return None, False
    if amp == "fp16":
        if device.type == "cuda":
            return torch.float16, True
        warnings.warn("amp=fp16 needs CUDA; using bf16 autocast on this device", stacklevel=2)
        return torch.bfloat16, False
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.warn("this GPU lacks bf16; using fp16 autocast with a GradScaler", stacklevel=2)
            return torch.float16, True
        return torch.bfloat16, False
    raise ValueError(f"runtime.amp must be bf16, fp16 or none, got {amp!r}")


# ---------------------------------------------------------------- the pipeline


def run_training(cfg: dict, run_dir: Path, progress: bool = True) -> dict:
    """Run every phase of cfg["mode"] in run_dir; returns the combined metrics (see summarize)."""
    run_dir = Path(run_dir)
    dist = init_distributed(cfg.get("runtime", {}).get("device", "auto"))
    if cfg["mode"] not in ("mae", "supervised"):
        raise ValueError(f"mode must be 'mae' or 'supervised', got {cfg['mode']!r}")
    phases = ["pretrain", "finetune"] if cfg["mode"] == "mae" else ["supervised"]
    results = {p: run_phase(p, cfg, run_dir / p, dist, progress) for p in phases}
    return summarize(results)


def run_phase(phase: str, cfg: dict, phase_dir: Path, dist: DistInfo, progress: bool = True) -> dict:
    done = phase_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    pc = cfg[phase]
    # Per-rank seeds: ranks must draw different masks/drop-path; DDP broadcasts rank 0's init.
    seed_everything(cfg["seed"] + dist.rank)
    info = data_info(cfg)
    train_set = build_data(cfg, "train", pc.get("aug"))
    mixup_fn, val_set, multi_view = None, None, False
    if phase == "pretrain":
        model = build_mae_model(cfg)

        def loss_fn(m, x, y):
            return m(x)[0]
    else:
        model = build_classifier(cfg, pc, info["num_classes"])
        if phase == "finetune":
            load_encoder(model, phase_dir.parent / "pretrain" / "encoder.pth")
        criterion, mixup_fn = build_criterion(pc, info["num_classes"])

        def loss_fn(m, x, y):
            return criterion(m(x), y)

        val_set = build_data(cfg, "val", None)
        views = cfg["data"].get("views") or {}
        multi_view = info["modality"] == "video" and views.get("spatial", 1) * views.get("temporal", 1) > 1

    result = fit(
        model,
        loss_fn,
        train_set,
        val_set,
        pc,
        phase_dir=phase_dir,
        phase=phase,
        seed=cfg["seed"],
        runtime=cfg.get("runtime", {}),
        mixup_fn=mixup_fn,
        multi_view=multi_view,
        num_workers=cfg["data"].get("num_workers", 0),
        progress=progress,
    )
    if val_set is not None:  # every rank evaluates its shard; rank 0 writes the gathered file
        pred = final_predictions(model, val_set, pc, cfg.get("runtime", {}), dist, multi_view)
    if dist.is_main:
        if val_set is not None:  # before done.json: a finished phase always has its predictions
            save_predictions(pred, phase_dir / PREDICTIONS)
        if phase == "pretrain":  # before done.json: a finished pretrain phase always has its encoder
            save_atomic(model.encoder_state_dict(), phase_dir / "encoder.pth")
            if hasattr(model, "reconstruct") and cfg.get("mae", {}).get("target") == "pixel":
                save_pretrain_figure(model, cfg, info, phase_dir / "reconstructions.png")
        write_json_atomic(result, done)
    barrier()
    return result


def final_predictions(
    model, val_set, phase_cfg: dict, runtime: dict, dist: DistInfo, multi_view: bool
) -> dict:
    """Per-sample top-5 and labels of the trained classifier on the whole val set, in dataset
    order (engine.evaluate gathers the ranks' shards). Run after fit, so a phase resumed past its
    last epoch still gets them; costs one more validation pass."""
    amp_dtype = resolve_amp(runtime.get("amp", "bf16"), dist.device)[0]
    sampler = ShardedSampler(len(val_set), dist.rank, dist.world_size, shuffle=False, pad=False)
    loader = DataLoader(val_set, batch_size=int(phase_cfg["batch_size"]), sampler=sampler)
    return evaluate(model, loader, dist.device, amp_dtype, multi_view=multi_view, predictions=True)[
        "predictions"
    ]


def save_pretrain_figure(mae, cfg: dict, info: dict, path: Path, n: int = 8) -> None:
    """Input / masked / reconstruction of the first n val items (a figure for the report; the
    mask is drawn from a fixed seed so reruns give the same picture)."""
    from analysis.reconstructions import save_reconstructions

    val = build_data(cfg, "val", None)
    images = torch.stack([val[i][0] for i in range(min(n, len(val)))])
    if images.dim() == 6:  # video with several views: (B, V, C, T, H, W) -> the first view
        images = images[:, 0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        save_reconstructions(mae, images, path, n=n, mean=info["mean"], std=info["std"])


def summarize(results: dict) -> dict:
    """Flat metrics: the last phase's top1/top5, total train time, pretrain losses, per-phase times."""
    last = results[list(results)[-1]]
    out = {k: last.get(k) for k in ("top1", "top5", "best_top1", "val_loss")}
    out["train_time_s"] = sum(r["train_time_s"] for r in results.values())
    for name, r in results.items():
        out[f"{name}_time_s"] = r["train_time_s"]
        out[f"{name}_loss_first"] = r["loss_first"]
        out[f"{name}_loss_last"] = r["loss_last"]
    out["phases"] = results
    return out


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
) -> dict:
    """Train `model` for phase_cfg["epochs"], resuming from phase_dir/checkpoint-last.pth if present.

    after_update(epoch, steps_done) is called after each optimizer update (tests use it to
    interrupt a run). Returns the phase metrics written to done.json.
    """
    rt = {"device": "auto", "amp": "bf16", "log_every": 10, "eval_every": 1, **(runtime or {})}
    dist = init_distributed(rt["device"])
    device, main = dist.device, dist.is_main
    phase_dir = Path(phase_dir)
    if main:
        phase_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    amp_dtype, use_scaler = resolve_amp(rt["amp"], device)
    epochs, bs = int(phase_cfg["epochs"]), int(phase_cfg["batch_size"])
    accum_iter = int(phase_cfg.get("accum_iter") or 1)

    model.to(device)
    base_lr = resolve_lr(phase_cfg, dist.world_size)
    optimizer = build_optimizer(model, phase_cfg, base_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    sampler = ShardedSampler(len(train_set), dist.rank, dist.world_size, seed=seed)
    steps_per_epoch = sampler.full_length() // bs
    if steps_per_epoch == 0:
        raise ValueError(f"{phase}: {len(train_set)} training samples cannot fill one batch of {bs} per rank")
    # The loader's own generator (reseeded per epoch) fixes worker seeds without touching the
    # global RNG, which a resumed run restores from the checkpoint.
    loader_gen = torch.Generator()
    pin = device.type == "cuda"
    loader = DataLoader(
        train_set,
        batch_size=bs,
        sampler=sampler,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=pin,
        generator=loader_gen,
    )
    val_loader = None
    if val_set is not None:
        val_sampler = ShardedSampler(len(val_set), dist.rank, dist.world_size, shuffle=False, pad=False)
        val_loader = DataLoader(
            val_set, batch_size=bs, sampler=val_sampler, num_workers=num_workers, pin_memory=pin
        )

    updates_per_epoch = -(-steps_per_epoch // accum_iter)
    min_lr = float(phase_cfg.get("min_lr") or 0.0)
    warmup = int(round(float(phase_cfg.get("warmup_epochs") or 0) * updates_per_epoch))

    def lr_fn(update: int) -> float:
        return lr_at(
            update,
            base_lr=base_lr,
            min_lr=min_lr,
            warmup_updates=warmup,
            total_updates=epochs * updates_per_epoch,
        )

    log_path = phase_dir / "log.jsonl"
    state = {"epoch": 0, "step": 0, "meter": {"loss_sum": 0.0, "count": 0}, "history": [], "elapsed_s": 0.0}
    ckpt = load_checkpoint(phase_dir / CKPT)
    if ckpt is not None:
        restore_training_state(ckpt, model, optimizer, scaler, dist.rank, dist.world_size, seed)
        state.update({k: ckpt[k] for k in state})
        if main and log_path.exists():  # drop log lines written after the checkpoint (they get redone)
            with open(log_path, "r+b") as f:
                f.truncate(ckpt["log_bytes"])
        if main:
            print(f"[{phase}] resumed from {phase_dir / CKPT}: epoch {state['epoch']}, step {state['step']}")

    def log(record: dict) -> None:
        if main:
            with open(log_path, "a") as f:
                f.write(json.dumps({"phase": phase, **record}) + "\n")

    t0 = time.perf_counter() - state["elapsed_s"]

    def save(epoch: int, step: int, meter: dict) -> None:
        # Every rank's RNG, so each resumes its own streams (drop path, masks differ per rank).
        rng = all_gather_object(get_rng_state())
        if main:
            extra = {"epoch": epoch, "step": step, "meter": dict(meter), "history": state["history"],
                     "elapsed_s": time.perf_counter() - t0, "world_size": dist.world_size, "phase": phase,
                     "log_bytes": log_path.stat().st_size if log_path.exists() else 0}  # fmt: skip
            save_atomic(training_state(model, optimizer, scaler, rng=rng, **extra), phase_dir / CKPT)

    net = model
    if dist.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    ckpt_every = int(rt.get("ckpt_every_steps") or 0)
    with StopRequest(enabled=dist.world_size == 1) as stop:
        for epoch in range(state["epoch"], epochs):
            start_step = state["step"] if epoch == state["epoch"] else 0
            meter = dict(state["meter"]) if epoch == state["epoch"] else {"loss_sum": 0.0, "count": 0}
            sampler.set_epoch(epoch, skip=start_step * bs)
            loader_gen.manual_seed(seed * 100_003 + epoch)
            t_epoch, last_saved = time.perf_counter(), start_step

            def on_update(steps_done: int, epoch=epoch, meter=meter) -> None:
                nonlocal last_saved
                if ckpt_every and steps_done - last_saved >= ckpt_every and steps_done < steps_per_epoch:
                    save(epoch, steps_done, meter)
                    last_saved = steps_done
                if after_update is not None:
                    after_update(epoch, steps_done)
                if stop.requested and steps_done < steps_per_epoch:
                    if last_saved != steps_done:  # the periodic save may just have written it
                        save(epoch, steps_done, meter)
                    raise Stopped(f"{phase}: stopped at epoch {epoch}, step {steps_done}; checkpoint saved")

            train_one_epoch(
                net,
                loss_fn,
                loader,
                optimizer,
                scaler,
                epoch=epoch,
                steps_per_epoch=steps_per_epoch,
                lr_fn=lr_fn,
                device=device,
                start_step=start_step,
                accum_iter=accum_iter,
                clip_grad=phase_cfg.get("clip_grad"),
                amp_dtype=amp_dtype,
                mixup_fn=mixup_fn,
                meter=meter,
                after_update=on_update,
                log=log,
                log_every=int(rt["log_every"]),
                progress=progress and main,
                phase=phase,
            )
            totals = torch.tensor([meter["loss_sum"], meter["count"]], dtype=torch.float64, device=device)
            if dist.world_size > 1:
                torch.distributed.all_reduce(totals)
            dt = time.perf_counter() - t_epoch
            record = {
                "epoch": epoch,
                "step": (epoch + 1) * steps_per_epoch,
                "train_loss": (totals[0] / totals[1]).item(),
                "lr": lr_fn((epoch + 1) * updates_per_epoch - 1),
                "epoch_time_s": dt,
                "throughput": (steps_per_epoch - start_step) * bs * dist.world_size / max(dt, 1e-9),
            }
            if val_loader is not None and ((epoch + 1) % int(rt["eval_every"]) == 0 or epoch + 1 == epochs):
                record.update(evaluate(net, val_loader, device, amp_dtype, multi_view=multi_view))
            log(record)
            state["history"].append(
                {k: record[k] for k in ("epoch", "train_loss", "top1", "top5", "val_loss") if k in record}
            )
            save(epoch + 1, 0, {"loss_sum": 0.0, "count": 0})
            if stop.requested:
                raise Stopped(f"{phase}: stopped after epoch {epoch}; checkpoint saved")
            if main and progress:
                shown = {k: round(v, 4) for k, v in record.items() if isinstance(v, float)}
                print(f"[{phase}] epoch {epoch}: {shown}")

    hist = state["history"]
    evals = [h for h in hist if "top1" in h]
    result = {
        "phase": phase,
        "epochs": epochs,
        "train_time_s": time.perf_counter() - t0,
        "loss_first": hist[0]["train_loss"] if hist else None,
        "loss_last": hist[-1]["train_loss"] if hist else None,
        "top1": evals[-1]["top1"] if evals else None,
        "top5": evals[-1]["top5"] if evals else None,
        "best_top1": max(h["top1"] for h in evals) if evals else None,
        "val_loss": evals[-1].get("val_loss") if evals else None,
        "lr": base_lr,
        "steps_per_epoch": steps_per_epoch,
        "world_size": dist.world_size,
    }
    return result
