"""ablate.py --rehearse: every run of the selection for a few steps of every phase, at its real
model, input size, dtype, data folder and per-device batch, in a throwaway runs folder, before
the real selection spends days on it.

Each run goes through the pipeline training uses (study/runs.execute -> train/phases): MAE
pretraining, its checkpoint and encoder.pth, the finetune loading that encoder, evaluation with
predictions, metrics.json (params, MACs, throughput), then the report over every rehearsed run.
Only the length changes: each phase trains `steps` steps of one per-device batch (epochs 1, no
warmup, as many training items as that takes; a handful of validation items).

On a GPU the per-device batch is the one the run will train with (the memory plan's for this
GPU, or the preset's cap), and the peak memory each phase allocated is set beside the plan's
estimate. On the CPU a GPU batch would take minutes per step, so a smaller one runs (said so);
the step time is then scaled per sample, and the memory shown is the process's resident high
water mark, which is not what the plan estimates (that counts one GPU's allocations).

The measured step times are kept per device kind (train/step_times.py): --plan and --dry-run
estimate wall time from them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import resource
import shutil
import statistics
import tempfile
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from ablations.cli.devices import will_use_gpu
from ablations.cli.estimate import duration
from ablations.data import build_dataset
from ablations.data.common import repeats
from ablations.study import config as C
from ablations.study import runs as R
from ablations.train import memory_plan as M
from ablations.train import step_times
from ablations.train.build import phase_data
from ablations.train.loop import phase_split
from analysis.report import write_report

STEPS = 3  # per phase: the first step warms up (allocator, kernels, workers); the rest are timed
CPU_BATCH = 2  # samples per step on the CPU
# Where a traceback passed through decides which step of the pipeline failed (innermost first).
STAGES = (
    ("load_encoder", "finetune: loading the pretrained encoder"),
    ("load_init", "finetune: loading finetune.init"),
    ("final_predictions", "{phase}: evaluation (predictions)"),
    ("evaluate", "{phase}: evaluation"),
    ("pretrain_reconstructions", "pretrain: reconstructions"),
    ("save_checkpoint", "{phase}: checkpoint"),
    ("save_torch_atomic", "{phase}: checkpoint"),
    ("measure_model", "metrics (params, MACs, throughput)"),
    ("build_dataset", "{phase}: data"),
)


@dataclass
class Rehearsal:
    """One run's rehearsal: passed or where and why not, and per phase what was measured."""

    name: str
    passed: bool = False
    stage: str = ""
    reason: str = ""
    phases: dict = field(default_factory=dict)  # phase -> {batch, real_batch, s_per_step, peak, plan, steps}
    full_run_s: float | None = None
    notes: list = field(default_factory=list)
    log: Path | None = None


def rehearse(args, runs: list[C.Run], devices: int, steps: int = STEPS) -> int:
    """Rehearse every run; print one line per run, then a table and the selection's totals.
    0 when every run passed, 1 otherwise."""
    device = R.device_name()
    on_gpu = not device.startswith("cpu")
    root = Path(tempfile.mkdtemp(prefix="ablate-rehearsal-"))
    print(f"[rehearse] {len(runs)} run(s), {steps} steps of every phase each, on {device}; "
          f"throwaway runs folder {root} (your runs folder is not touched)", flush=True)  # fmt: skip
    if not on_gpu and any(will_use_gpu(run.config) for run in runs):
        print(f"[rehearse] CPU: {CPU_BATCH} samples per step instead of the per-device GPU batch (which "
              "would take minutes per step here); step times are scaled per sample", flush=True)  # fmt: skip
    done = []
    for i, run in enumerate(runs, 1):
        r = rehearse_one(run, root, steps, on_gpu, device, devices)
        done.append(r)
        print(f"[rehearse] {i}/{len(runs)} {one_line(r)}", flush=True)
    if all(r.passed for r in done):
        try:
            with open(root / "report.log", "w") as f, contextlib.redirect_stdout(f):
                write_report(root)
        except Exception as e:  # the report reads what every run wrote: the last stage of the pipeline
            for r in done:
                r.passed, r.stage, r.reason = False, "report", first_line(e)
            print(f"[rehearse] report: FAILED: {first_line(e)}")
    print("\n" + summary(done, devices, on_gpu))
    if all(r.passed for r in done):
        shutil.rmtree(root, ignore_errors=True)
        return 0
    print(f"\nThe failed runs' logs are kept: {root}/<run>/rehearsal.log")
    return 1


def rehearsal_config(cfg: dict, steps: int, on_gpu: bool) -> tuple[dict, dict]:
    """(the run's config cut to `steps` steps per phase at a rehearsal batch, {phase: (batch, real
    per-device batch, checkpointed blocks)}). One process: the per-device batch is what the run's
    plan (or cap) gives one device; the rehearsal has no accumulation."""
    cfg = copy.deepcopy(cfg)
    rt = cfg["runtime"]
    batches = {}
    for p in C.PHASES[cfg["mode"]]:
        real, _, ckpt = phase_split(cfg[p], rt, p, 1)
        r = repeats(cfg[p].get("aug"))  # clips per video: a step holds whole videos
        # a GPU run rehearsed on the CPU takes a smaller batch; a CPU run rehearses its own
        b = real if on_gpu or not will_use_gpu(cfg) else max(r, CPU_BATCH // r * r)
        batches[p] = (min(b, real), real, ckpt)
    for p, (b, _, _) in batches.items():
        cfg[p].update(batch_size=b, epochs=1, warmup_epochs=0)
        cfg[p]["train_size"] = None
        plan = (rt.get("plan") or {}).get(p)
        if plan:
            rt["plan"][p] = {**plan, "max_batch_per_device": b, "accum_iter": 1}
    items = max(b for b, _, _ in batches.values()) * steps
    cfg["data"].update(train_size=items, val_size=max(b for b, _, _ in batches.values()))
    rt.update(max_batch_per_device=None, log_every=1, eval_every=1, ckpt_every_steps=0)
    cfg["bench"] = {"batch_sizes": [min(b for b, _, _ in batches.values())], "warmup": 1, "iters": 1}
    return cfg, batches


def rehearse_one(run: C.Run, root: Path, steps: int, on_gpu: bool, device: str, devices: int) -> Rehearsal:
    r = Rehearsal(run.name)
    try:
        cfg, batches = rehearsal_config(run.config, steps, on_gpu)
    except ValueError as e:
        r.stage, r.reason = "setup", first_line(e)
        return r
    folder = R.run_dir(root, run)
    folder.mkdir(parents=True, exist_ok=True)
    r.log = folder / "rehearsal.log"
    rss0 = rss_gib()
    try:
        with open(r.log, "w") as f, contextlib.redirect_stdout(f):
            R.execute(replace(run, config=cfg), root, force=True, progress="lines")
        r.passed = True
    except Exception as e:  # any failure is the rehearsal's finding: where and why, in one line
        r.stage, r.reason = failed_stage(e, folder, C.PHASES[cfg["mode"]]), first_line(e)
        with open(r.log, "a") as f:
            traceback.print_exc(file=f)
    for p, (b, real, ckpt) in batches.items():
        measured = measure_phase(folder / p)
        if measured is None:
            continue
        peak = measured["peak"] if measured["peak"] is not None else max(rss_gib() - rss0, 0.0)
        r.phases[p] = {
            "batch": b,
            "real_batch": real,
            "s_per_step": measured["s_per_step"],
            "steps": measured["steps"],
            "peak": peak,
            "peak_kind": "GPU" if on_gpu else "CPU RSS growth",
            "plan": safe(lambda: M.estimate_gib(cfg, p, b, ckpt)),  # noqa: B023 (called at once)
        }
        step_times.record(run.config, p, device, measured["s_per_step"] / b, b)
    if r.passed:
        r.full_run_s, r.notes = full_run_seconds(run.config, r.phases, devices)
    return r


def measure_phase(phase_dir: Path) -> dict | None:
    """{s_per_step (the median of the logged steps after the first: warm-up), steps, peak (GPU
    GiB or None)} from a phase's log.jsonl and done.json; None when it logged no step."""
    log = phase_dir / "log.jsonl"
    if not log.exists():
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    step_records = [x for x in records if "loss" in x and "throughput" in x and "train_loss" not in x]
    if not step_records:
        return None
    done = phase_dir / "done.json"
    peak = json.loads(done.read_text()).get("peak_memory_gib") if done.exists() else None
    batch = json.loads(done.read_text())["batch_per_device"] if done.exists() else None
    timed = step_records[1:] or step_records
    s = statistics.median((batch or 1) / max(x["throughput"], 1e-12) for x in timed)
    return {"s_per_step": s, "steps": len(step_records), "peak": peak}


def full_run_seconds(cfg: dict, phases: dict, devices: int) -> tuple[float, list[str]]:
    """(the full run's training time on `devices` devices like this one, notes): per phase, its
    samples (epochs x the real training set, in whole global batches) split over the devices, times
    the measured time per sample (from a smaller batch on the CPU; linear in the devices).
    Evaluation passes are not counted. A training set smaller than one global batch is noted: the
    real run would refuse it."""
    total, notes = 0.0, []
    for p, m in phases.items():
        n = train_items(phase_data(cfg, p)["data"])
        g = int(cfg[p]["batch_size"])
        if n < g:
            notes.append(f"{p}: the training set has {n} items, under one global batch ({g}): the real "
                         "run would stop; estimated as if it had one batch per epoch")  # fmt: skip
        samples = int(cfg[p]["epochs"]) * max(n // g, 1) * g
        total += samples / devices * m["s_per_step"] / m["batch"]
    return total, notes


_SIZES: dict = {}


def train_items(data: dict) -> int:
    """The real training set's size (built once per data config)."""
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in _SIZES:
        _SIZES[key] = len(build_dataset(data, split="train", aug=None))
    return _SIZES[key]


def failed_stage(e: BaseException, folder: Path, phases: list[str]) -> str:
    """Which step of the pipeline raised: the phase without done.json, refined by the functions
    the traceback passed through (loading the encoder, evaluation, a checkpoint...)."""
    phase = next((p for p in phases if not (folder / p / "done.json").exists()), None)
    names = [f.name for f in traceback.extract_tb(e.__traceback__)]
    for fn, stage in STAGES:
        if fn in names:
            return stage.format(phase=phase or "run")
    return f"{phase}: training" if phase else "metrics"


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def safe(fn):
    try:
        return fn()
    except Exception:  # an estimate that cannot be made is left out, never a failed rehearsal
        return None


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def one_line(r: Rehearsal) -> str:
    if not r.passed:
        return f"{r.name}: FAILED at {r.stage}: {r.reason}"
    parts = []
    for p, m in r.phases.items():
        smaller = f" (of {m['real_batch']})" if m["batch"] != m["real_batch"] else ""
        plan = f"{m['plan']:.1f}" if m["plan"] is not None else "?"
        parts.append(f"{p} {m['s_per_step']:.2f} s/step at batch {m['batch']}{smaller}, peak {m['peak']:.1f} "
                     f"GiB {m['peak_kind']} (plan {plan})")  # fmt: skip
    notes = "".join(f"\n  [note] {n}" for n in r.notes)
    return f"{r.name}: passed; " + "; ".join(parts) + notes


def summary(done: list[Rehearsal], devices: int, on_gpu: bool) -> str:
    """The table of every run, and the selection's totals."""
    head = ["run", "result", "phase", "batch (real)", "s/step", "peak GiB (kind)", "plan GiB",
            f"full run on {devices} device(s) like this"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in done:
        result = "passed" if r.passed else f"FAILED at {r.stage}: {r.reason}"
        full = duration(r.full_run_s) if r.full_run_s is not None else "-"
        if not r.phases:
            lines.append(f"| {r.name} | {result} | - | - | - | - | - | {full} |")
        for j, (p, m) in enumerate(r.phases.items()):
            plan = f"{m['plan']:.2f}" if m["plan"] is not None else "-"
            first = j == 0
            cells = [r.name if first else "", result if first else "", p, f"{m['batch']} ({m['real_batch']})",
                     f"{m['s_per_step']:.2f}", f"{m['peak']:.2f} ({m['peak_kind']})", plan,
                     full if first else ""]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    passed = sum(r.passed for r in done)
    smaller = any(m["batch"] != m["real_batch"] for r in done for m in r.phases.values())
    total = sum(r.full_run_s or 0.0 for r in done)
    unknown = sum(r.full_run_s is None for r in done)
    lines.append(
        f"\nSelection: {passed}/{len(done)} runs passed. Full selection, one run after another on {devices} "
        f"device(s) like this: {duration(total)} wall, {total * devices / 3600:,.0f} device-hours"
        + (f" ({unknown} run(s) without an estimate)" if unknown else "")
        + ("" if on_gpu or not smaller else ". Measured on the CPU at a smaller batch: a GPU's time is "
           "not this; rehearse on the GPU kind (--rehearse --launcher slurm) for its estimate")
        + ". Training steps only (evaluation passes add to it); linear in the devices."
    )  # fmt: skip
    return "\n".join(lines)
