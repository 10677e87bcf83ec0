"""The phase pipeline: mode "mae" = pretrain (sparse MAE) then finetune; "supervised" = one phase.

    run_dir/
      pretrain/   checkpoint-last.pth  log.jsonl  encoder.pth  done.json     (mode mae)
                  reconstructions.npz   (pixel target: input / masked / reconstruction, RGB)
      finetune/   checkpoint-last.pth  log.jsonl  predictions.npz  done.json (mode mae)
      supervised/ checkpoint-last.pth  log.jsonl  predictions.npz  done.json (mode supervised)

checkpoint-last.pth is rewritten (atomically) after every epoch and, with runtime.ckpt_every_steps
= N, every N data steps inside an epoch (at accumulation boundaries). log.jsonl has one JSON object
per line: step records {phase, epoch, step, loss, lr, throughput} and epoch records {phase, epoch,
step, train_loss, lr, epoch_time_s, throughput, top1, top5, val_loss, val_samples}. done.json holds
the phase's final metrics; predictions.npz the final model's per-sample val top-5 and labels
(ablations/store/predictions.py), written before done.json. A phase with done.json is never rerun, and an
interrupted phase resumes from its checkpoint. encoder.pth (MAE encoder weights) is what the
finetune phase starts from; when it cannot be read, the pretrain phase is redone (its done.json
removed: it resumes from its final checkpoint, training nothing) and writes it again.
Ctrl-C, SIGTERM or SIGUSR1 (any process count: the ranks agree on the step) lets the update in
flight finish, checkpoints that exact step and raises interrupt.Stopped; a second Ctrl-C stops at
once (resume then redoes the steps since the last checkpoint). "step" in log.jsonl counts data steps
of one process (per-device batches), so it depends on the split of the global batch.

Resume is bit-exact on CPU with data.num_workers = 0 (same data order, RNG streams, optimizer and
schedule position). With worker processes the data order is still exact but the augmentation
draws of a resumed epoch differ; on CUDA, non-deterministic kernels can also differ.

`fit` (ablations/train/loop.py) is the generic epoch loop (any model, dataset, loss); the `build_*`
factories (ablations/train/build.py) are the only places that touch models / MAE / data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ablations.store.atomic import save_torch_atomic, write_json_atomic
from ablations.store.predictions import FILE as PREDICTIONS
from ablations.store.predictions import save_predictions
from ablations.store.tblog import write_image
from ablations.train.build import (
    DamagedArtifact,
    build_classifier,
    build_criterion,
    build_data,
    build_mae_model,
    data_info,
    load_encoder,
    load_init,
    phase_data,
    unused_weights_note,
)
from ablations.train.checkpoint import seed_everything
from ablations.train.distributed import DistInfo, barrier, init_distributed
from ablations.train.engine import evaluate
from ablations.train.loop import CKPT, fit, resolve_amp, val_loader  # noqa: F401  (fit, CKPT: the loop's public names)
from ablations.train.reconstructions import FILE as RECONSTRUCTIONS
from ablations.train.reconstructions import grid, reconstruction_arrays, save_reconstruction_arrays

# ---------------------------------------------------------------- the pipeline


def run_training(cfg: dict, run_dir: Path, progress: bool = True) -> dict:
    """Run every phase of cfg["mode"] in run_dir; returns the combined metrics (see summarize)."""
    run_dir = Path(run_dir)
    dist = init_distributed(cfg.get("runtime", {}).get("device", "auto"))
    if cfg["mode"] not in ("mae", "supervised"):
        raise ValueError(f"mode must be 'mae' or 'supervised', got {cfg['mode']!r}")
    phases = ["pretrain", "finetune"] if cfg["mode"] == "mae" else ["supervised"]
    if cfg["mode"] == "mae" and (cfg.get("finetune") or {}).get("init"):
        phases = ["finetune"]  # finetune.init: pretrained elsewhere
    results, redone, i = {}, set(), 0
    while i < len(phases):
        try:
            results[phases[i]] = run_phase(
                phases[i], cfg, run_dir / phases[i], dist, progress, later_work(cfg, phases, phases[i])
            )
            i += 1
        except DamagedArtifact as e:  # e.g. a truncated pretrain/encoder.pth: redo the phase that wrote it
            if e.phase not in phases[:i] or e.phase in redone:
                raise
            redone.add(e.phase)
            done = run_dir / e.phase / "done.json"
            if dist.is_main:
                print(f"[repair] {e}: redoing the {e.phase} phase that wrote it ({done} removed)", flush=True)
                done.unlink(missing_ok=True)
            barrier()
            i = phases.index(e.phase)
    return summarize(results)


DONE_KEYS = ("train_time_s", "loss_first", "loss_last")  # what summarize reads from every phase


def read_done(done: Path) -> dict | None:
    """A finished phase's metrics (done.json), or None. A damaged or wrong-shaped done.json is
    said and rebuilt: the phase then resumes from its final checkpoint, which trains nothing."""
    if not done.exists():
        return None
    try:
        result = json.loads(done.read_text())
    except (ValueError, OSError) as e:
        print(f"[repair] {done} is unreadable ({e}); rebuilding it from the phase's last checkpoint")
        return None
    if not isinstance(result, dict) or any(k not in result for k in DONE_KEYS):
        print(f"[repair] {done} is not a phase's metrics; rebuilding it from the phase's last checkpoint")
        return None
    return result


def later_work(cfg: dict, phases: list[str], phase: str) -> tuple:
    """(epochs, training items or None) of each phase after `phase`, for the run's ETA. Items come
    from the config (<phase>.train_size, else data.train_size); None: as many as this phase has."""
    after = phases[phases.index(phase) + 1 :]
    size = lambda p: cfg[p].get("train_size") or cfg["data"].get("train_size")  # noqa: E731
    return tuple((cfg[p]["epochs"], size(p)) for p in after)


def run_phase(
    phase: str, cfg: dict, phase_dir: Path, dist: DistInfo, progress: bool = True, later: tuple = ()
) -> dict:
    done = phase_dir / "done.json"
    finished = read_done(done)
    if finished is not None:
        return finished
    pc = cfg[phase]
    # Per-rank seeds: ranks must draw different masks/drop-path; DDP broadcasts rank 0's init.
    seed_everything(cfg["seed"] + dist.rank)
    info = data_info(cfg)
    train_set = build_data(phase_data(cfg, phase), "train", pc.get("aug"))
    mixup_fn, val_set, multi_view = None, None, False
    if phase == "pretrain":
        model = build_mae_model(cfg)

        def loss_fn(m, x, y):
            return m(x)[0]
    else:
        model = build_classifier(cfg, pc, info["num_classes"])
        if phase == "finetune" and pc.get("init"):
            load_init(model, Path(pc["init"]).expanduser(), pc.get("init_sha256"))
        elif phase == "finetune":
            unused = load_encoder(model, phase_dir.parent / "pretrain" / "encoder.pth")
            if unused and dist.rank == 0:
                print(unused_weights_note(unused), flush=True)
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
        later=later,
    )
    if val_set is not None:  # every rank evaluates its shard; rank 0 writes the gathered file
        bs = result["batch_per_device"]  # the loop's split of the global batch
        final_cfg = final_data(cfg)
        final_set = val_set if final_cfg is cfg else build_data(final_cfg, "val", None)
        pred = final_predictions(model, final_set, bs, cfg.get("runtime", {}), dist, multi_view)
        if final_set is not val_set and pred is not None:  # the run's accuracy is the larger set's
            result |= final_accuracy(pred, result)
    if dist.is_main:
        if val_set is not None:  # before done.json: a finished phase always has its predictions
            save_predictions(pred, phase_dir / PREDICTIONS)
        if phase == "pretrain":  # before done.json: a finished pretrain phase always has its encoder
            save_torch_atomic(model.encoder_state_dict(), phase_dir / "encoder.pth")
            if hasattr(model, "reconstruct") and cfg.get("mae", {}).get("target") == "pixel":
                arrays = pretrain_reconstructions(model, cfg, info)
                save_reconstruction_arrays(arrays, phase_dir / RECONSTRUCTIONS)
                step = result["epochs"] * result["steps_per_epoch"]
                tb_on = cfg.get("runtime", {}).get("tensorboard", False)
                write_image(phase_dir, tb_on, "pretrain/reconstructions", grid(arrays), step)
        write_json_atomic(result, done)
    barrier()
    return result


def final_data(cfg: dict) -> dict:
    """cfg with data.val_size = data.final_val_size when that is set and differs (else cfg itself):
    the finished model is evaluated on a larger set than the per-epoch evaluation, so that the
    validation sample is not what limits the comparisons (analysis/stats.py's sample noise)."""
    size = cfg["data"].get("final_val_size")
    if not size or size == cfg["data"].get("val_size"):
        return cfg
    return {**cfg, "data": {**cfg["data"], "val_size": size}}


def final_accuracy(pred: dict, result: dict) -> dict:
    """top1 / top5 (%) of the final predictions, and the per-epoch set's last top-1 kept beside them."""
    top5, label = np.asarray(pred["top5"]), np.asarray(pred["label"])
    hit = top5 == label[:, None]
    return {"top1": 100.0 * float(hit[:, 0].mean()), "top5": 100.0 * float(hit.any(1).mean()),
            "final_val_size": int(len(label)), "epoch_val_top1": result.get("top1")}  # fmt: skip


def final_predictions(
    model, val_set, batch_size: int, runtime: dict, dist: DistInfo, multi_view: bool
) -> dict:
    """Per-sample top-5 and labels of the trained classifier on the whole val set, in dataset
    order (engine.evaluate gathers the ranks' shards). Run after fit, so a phase resumed past its
    last epoch still gets them; costs one more validation pass."""
    amp_dtype = resolve_amp(runtime.get("amp", "bf16"), dist.device)[0]
    loader = val_loader(val_set, batch_size, dist)
    out = evaluate(model, loader, dist.device, amp_dtype, multi_view=multi_view, predictions=True)
    return out["predictions"]


def pretrain_reconstructions(mae, cfg: dict, info: dict, n: int = 8) -> dict:
    """Input / masked / reconstruction of the first n val items, for the report's figure (the
    mask is drawn from a fixed seed so reruns give the same picture)."""
    val = build_data(cfg, "val", None)
    images = torch.stack([val[i][0] for i in range(min(n, len(val)))])
    if images.dim() == 6:  # video with several views: (B, V, C, T, H, W) -> the first view
        images = images[:, 0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        return reconstruction_arrays(mae, images, info["mean"], info["std"])


def summarize(results: dict) -> dict:
    """Flat metrics: the last phase's top1/top5, total train time, pretrain losses, per-phase times."""
    last = results[list(results)[-1]]
    out = {
        k: last.get(k) for k in ("top1", "top5", "best_top1", "val_loss", "final_val_size", "epoch_val_top1")
    }
    out["train_time_s"] = sum(r["train_time_s"] for r in results.values())
    for name, r in results.items():
        out[f"{name}_time_s"] = r["train_time_s"]
        out[f"{name}_loss_first"] = r["loss_first"]
        out[f"{name}_loss_last"] = r["loss_last"]
    out["phases"] = results
    return out
