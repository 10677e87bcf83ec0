"""How long a selection will take: per run and phase, wall time and device-hours on the devices
the command will get, with an honest range and its source (ablate.py --plan and --dry-run).

Two sources, the better one first:
- a rehearsal's measured step (ablate.py --rehearse, kept per device kind by
  train/step_times.py): seconds per sample on this device kind, or for a GPU run previewed where
  there is no GPU, on the GPU kind that rehearsed it last;
- the model's training FLOPs per sample (train/step_flops.py: 3 forwards counted on fake tensors)
  over the device's throughput: for GPUs their dense bf16 peak from the vendors' datasheets times
  an assumed utilisation of 25-50%; for this CPU, a measured fp32 matmul rate times 15-60%.

Samples: every phase's epochs x its training set in whole global batches (data.train_size; the
data folder's size when it can be read here; else ImageNet-1K's 1,281,167 or Kinetics-400's about
240,000 training items). Linear in the devices; evaluation passes and start-up are not counted.
The estimate-vs-measured ratio on the cpu and tiny presets is in docs/scale.md
(analysis/bench_estimate.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ablations.cli.devices import will_use_gpu
from ablations.data import build_dataset
from ablations.study import config as C
from ablations.study.runs import device_name
from ablations.train import step_times
from ablations.train.build import phase_data
from ablations.train.engine import eta_text
from ablations.train.step_flops import train_flops_per_sample

# Dense bf16 tensor-core peaks (FLOP/s), vendors' datasheets (no sparsity).
GPU_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "V100": 125e12}
GPU_UTILISATION = (0.25, 0.5)  # assumed model-FLOPs utilisation of a training step on a GPU
CPU_UTILISATION = (0.15, 0.6)  # of the measured matmul rate (small models, LayerNorm, data loading)
# A rehearsal's measured step: a factor 2 either way. On the shared 2-core CPU the benchmark's
# measured / estimate was 1.1-2.6 at low load (tiny: evaluation and start-up, which the estimate
# leaves out, are most of its time) and 0.24-5 as other jobs' load came and went (scale.md).
REHEARSAL_RANGE = (0.5, 2.0)
KNOWN_SIZES = {("imagefolder", 1000): (1_281_167, "ImageNet-1K's 1,281,167"),
               ("video_folder", 400): (240_000, "Kinetics-400's about 240,000")}  # fmt: skip


@dataclass
class Estimate:
    seconds: tuple[float, float, float] = (0.0, 0.0, 0.0)  # low, middle, high
    sources: list = field(default_factory=list)

    def add(self, s: tuple[float, float, float], source: str) -> None:
        self.seconds = tuple(a + b for a, b in zip(self.seconds, s))
        if source not in self.sources:
            self.sources.append(source)


def train_samples(cfg: dict, phase: str) -> tuple[int | None, str]:
    """(samples the phase trains on in all its epochs, where the training-set size comes from)."""
    data = phase_data(cfg, phase)["data"]
    n, where = data.get("train_size"), "data.train_size"
    if n is None:
        known = KNOWN_SIZES.get((data.get("name"), int(data.get("num_classes") or 0)))
        try:
            n, where = len(build_dataset(data, split="train", aug=None)), "the data folder"
        except Exception:  # no data here (a login node, no data.root yet): the dataset's usual size
            n, where = known if known else (None, "unknown: --set data.train_size=N")
    if n is None:
        return None, where
    g = int(cfg[phase]["batch_size"])
    return int(cfg[phase]["epochs"]) * max(n // g, 1) * g, where


_CPU_RATE: list = []


def cpu_rate() -> float:
    """This CPU's fp32 matmul rate (FLOP/s), measured once (~0.3 s)."""
    if not _CPU_RATE:
        a = torch.randn(512, 512)
        torch.mm(a, a)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            torch.mm(a, a)
            n += 1
        _CPU_RATE.append(n * 2 * 512**3 / (time.perf_counter() - t0))
    return _CPU_RATE[0]


def gpu_peaks(cfg: dict) -> tuple[float, float, str]:
    """(lowest, highest peak FLOP/s, which GPUs) for the GPU the run will get: this machine's, or
    the cards of the planned memory size (40 GB: A100; 80 GB: A100 to H100)."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in GPU_PEAKS.items() if k in name), None)
        if peak:
            return peak, peak, name
    mem = (cfg["runtime"].get("plan") or {}).get("device_mem_gib") or 80
    if mem < 60:
        return GPU_PEAKS["A100"], GPU_PEAKS["A100"], "an A100 40 GB"
    return GPU_PEAKS["A100"], GPU_PEAKS["H100"], "an A100 80 GB to an H100"


def estimate_run(cfg: dict, devices: int) -> tuple[Estimate, list[str]]:
    """The run's estimate on `devices` devices, and notes (a phase without one)."""
    est, notes = Estimate(), []
    here = device_name()
    gpu = will_use_gpu(cfg)
    for phase in C.PHASES[cfg["mode"]]:
        samples, where = train_samples(cfg, phase)
        if samples is None:
            notes.append(f"{phase}: training-set size {where}")
            continue
        kept = step_times.lookup(cfg, phase, here if gpu == (not here.startswith("cpu")) else None)
        if kept is not None and (gpu or kept[0] == here):
            s = samples * kept[1]["s_per_sample"] / devices
            lo, hi = REHEARSAL_RANGE
            est.add((s * lo, s, s * hi), f"rehearsal on {kept[0]} ({kept[1]['measured_at']})")
            continue
        flops = train_flops_per_sample(cfg, phase) * samples / devices
        if gpu:
            p_lo, p_hi, which = gpu_peaks(cfg)
            u_lo, u_hi = GPU_UTILISATION
            src = f"MACs over {which}'s bf16 peak at {u_lo:.0%}-{u_hi:.0%} utilisation (no GPU rehearsal yet)"
        else:
            p_lo = p_hi = cpu_rate()
            u_lo, u_hi = CPU_UTILISATION
            src = f"MACs over this CPU's matmul rate at {u_lo:.0%}-{u_hi:.0%} (no rehearsal here yet)"
        fast, slow = flops / (p_hi * u_hi), flops / (p_lo * u_lo)
        est.add((fast, (fast * slow) ** 0.5, slow), src)
        if "data" not in where and "folder" not in where:
            notes.append(f"{phase}: {where} training items assumed")
    return est, notes


def duration(s: float) -> str:
    """Seconds under ten minutes (the small presets), else HH:MM:SS or days."""
    return f"{s:.1f} s" if s < 600 else eta_text(s)


def span(s: tuple[float, float, float]) -> str:
    return f"~{duration(s[1])} ({duration(s[0])} to {duration(s[2])})"


def run_line(name: str, est: Estimate, notes: list[str], devices: int) -> str:
    hours = tuple(x * devices / 3600 for x in est.seconds)
    text = (f"time: {span(est.seconds)} on {devices} device(s), {hours[1]:,.0f} device-hours "
            f"({hours[0]:,.0f}-{hours[2]:,.0f}); source: {'; '.join(est.sources) or 'none'}")  # fmt: skip
    return text + "".join(f"; {n}" for n in notes)


def estimates(runs: list, devices: int) -> tuple[dict, Estimate]:
    """({run name: (Estimate, notes)}, the selection's total: the runs one after another)."""
    out, total = {}, Estimate()
    for run in runs:
        est, notes = estimate_run(run.config, devices)
        out[run.name] = (est, notes)
        for src in est.sources:
            total.add((0.0, 0.0, 0.0), src)
        total.seconds = tuple(a + b for a, b in zip(total.seconds, est.seconds))
    return out, total


def selection_line(total: Estimate, n_runs: int, devices: int) -> str:
    hours = tuple(x * devices / 3600 for x in total.seconds)
    return (f"selection ({n_runs} runs, one after another on {devices} device(s)): {span(total.seconds)} "
            f"wall, {hours[1]:,.0f} device-hours ({hours[0]:,.0f}-{hours[2]:,.0f}); training steps only, "
            "evaluation and start-up not counted")  # fmt: skip
