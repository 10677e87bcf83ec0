"""Memory plan: the per-device batch and activation checkpointing that fit one device's memory.

Per device, training holds (fp32 master weights, AdamW):

    weights 4 B/param + grads 4 B/param + AdamW exp_avg/exp_avg_sq 8 B/param
    + DDP gradient buckets 4 B/param (more than one device)
    + saved activations(batch, checkpointed blocks)   <- measured, not guessed
    + working memory of one recomputed block (checkpointing only)

and a reserve is kept free (CUDA context, allocator fragmentation). Activations are measured, not
guessed: the phase's real model (MAE for pretraining, the classifier otherwise) runs forward
under autocast with the run's dtype at batch 1 and 2, and the bytes of every unique storage that
autograd saves for backward are summed (``torch.autograd.graph.saved_tensors_hooks``), per
block, with each block's input (what a checkpointed block keeps instead). The model, its input
and every activation are fake tensors (``ablations/train/fake_tensors.py``): shapes, dtypes and
storages without memory or compute, so a Hiera-L clip at 16x224x224 is measured in seconds; a
test checks that they give the same bytes as real tensors. The two batches give a per-sample
slope and a fixed part (e.g. autocast's low-precision weight copies); both are cached in
``~/.cache/hiera-ablations/activations.json`` (HIERA_CACHE overrides the folder), so a second
``--plan`` is instant. On CPU, scaled_dot_product_attention saves what the CUDA flash kernel
saves (output + logsumexp), so the measurement carries over; the attention kernel's own
workspace does not, and is inside the reserve.

The plan: the largest per-device batch (a divisor of global / devices, via
``batching.plan_batch``) that fits without checkpointing; when that is below ``MIN_BATCH`` (GPUs
run small batches inefficiently) the fewest first blocks are checkpointed that raise it to
``MIN_BATCH`` (or all of them). The result is recorded in the run's config under
``runtime.plan`` (a neutral key: it changes how a run trains, never what it learns), and
training takes each phase's cap and checkpointing from there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ablations.store.atomic import write_atomic
from ablations.train.batching import plan_batch
from ablations.train.build import build_classifier, build_mae_model
from ablations.train.fake_tensors import fake_tensors

GIB = 2**30
BYTES_PER_PARAM = {"weights": 4, "grads": 4, "adamw": 8, "ddp_buckets": 4}
RESERVE_FRACTION, RESERVE_FIXED = 0.08, 1.5 * GIB  # fragmentation; CUDA context + cuBLAS/cuDNN workspaces
MIN_BATCH = 32  # below this per device, checkpointing is worth its ~1/3 extra compute
# The activations are measured under CPU autocast, where LayerNorm, softmax etc. keep the input's
# low-precision dtype; CUDA autocast runs them in fp32 (einsum in bf16). Emulating those two
# differences on the CPU gave 4-16% more saved bytes per sample (Hiera-L finetune +9%, MAE +7%,
# MViTv2-L +16%, row b +4%), so a plan for GPUs counts the worst of them.
CUDA_AUTOCAST_MARGIN = 1.16
MEASURE_BATCHES = (1, 2)
MEASURE_VERSION = 2  # in the cache key: 2 = fake tensors, LayerNorm stats as the CPU kernel keeps them
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None, "fp32": None}


# What a card sold as N GB reports to PyTorch (torch.cuda.get_device_properties().total_memory, in
# GiB), the smallest of the common models: A100 40 GB (PCIe 39.39, SXM4 39.59), A100 80 GB (79.15) and
# H100 80 GB (79.1). These are the values PyTorch's out-of-memory messages print as "total capacity"
# on those cards, not measured here. `--device-mem 40` plans for what a 40 GB card gets: the plan a
# real run makes from the card it finds (autoplan, rounded the same way) is then the one previewed.
CARD_REPORTED_GIB = {40: 39.39, 80: 79.1}


def planned_gib(gib: float) -> float:
    """The memory a plan is made for: a card's nominal size (40, 80) becomes what that card reports;
    anything else is taken as reported GiB. Rounded to 0.1 GiB, as the autoplan rounds the GPU's."""
    return round(CARD_REPORTED_GIB.get(gib, gib), 1)


class PlanError(ValueError):
    """No plan fits; the message names the fix."""


# ---------------------------------------------------------------- measuring saved activations


def saved_bytes(model: torch.nn.Module, loss_fn, dtype: torch.dtype | None) -> dict:
    """One forward of loss_fn(model) under autocast; bytes autograd saves for backward.

    Returns {"outside": bytes saved outside the blocks, "blocks": [bytes saved by block i],
    "inputs": [bytes of block i's input]}. Tensors are counted once per storage; parameters are
    not activations and are left out (autocast's cast copies are counted: they are saved too).
    """
    blocks = list(getattr(model, "blocks", None) or model.encoder.blocks)
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: set[int] = set()
    out = {"outside": 0, "blocks": [0] * len(blocks), "inputs": [0] * len(blocks)}
    current: list[int | None] = [None]

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params and storage._cdata not in seen:
            seen.add(storage._cdata)
            if current[0] is None:
                out["outside"] += storage.nbytes()
            else:
                out["blocks"][current[0]] += storage.nbytes()
        return t

    def enter(i):
        def hook(_module, args):
            current[0] = i
            out["inputs"][i] = args[0].untyped_storage().nbytes()

        return hook

    handles = [b.register_forward_pre_hook(enter(i)) for i, b in enumerate(blocks)]
    handles += [b.register_forward_hook(lambda *_: current.__setitem__(0, None)) for b in blocks]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss_fn(model)
    finally:
        for h in handles:
            h.remove()
    return out


@dataclass(frozen=True)
class Activations:
    """Saved activation bytes as linear functions of the batch: fixed + per_sample * batch, for
    the parts outside the blocks, each block's saved tensors, and each block's input; and the
    model's parameter count."""

    params: int
    outside: tuple[float, float]
    blocks: tuple[tuple[float, float], ...]
    inputs: tuple[tuple[float, float], ...]

    @staticmethod
    def fit(params: int, small: dict, large: dict, b_small: int, b_large: int) -> Activations:
        def line(a, b):
            slope = (b - a) / (b_large - b_small)
            return (a - slope * b_small, slope)

        return Activations(
            params=params,
            outside=line(small["outside"], large["outside"]),
            blocks=tuple(line(a, b) for a, b in zip(small["blocks"], large["blocks"])),
            inputs=tuple(line(a, b) for a, b in zip(small["inputs"], large["inputs"])),
        )

    def saved(self, batch: int, ckpt: int = 0) -> float:
        """Bytes held between forward and backward with the first `ckpt` blocks checkpointed
        (a checkpointed block keeps only its input)."""
        at = lambda fb: max(fb[0] + fb[1] * batch, 0.0)  # noqa: E731
        kept = [at(i) if n < ckpt else at(b) for n, (b, i) in enumerate(zip(self.blocks, self.inputs))]
        return at(self.outside) + sum(kept)

    def recompute(self, batch: int, ckpt: int) -> float:
        """Peak extra bytes in backward: the largest checkpointed block, recomputed."""
        return max((max(b[0] + b[1] * batch, 0.0) for b in self.blocks[:ckpt]), default=0.0)


def phase_model(cfg: dict, phase: str) -> tuple[torch.nn.Module, object]:
    """(model, loss_fn(model) on a batch to be set) for one phase, built as training builds it."""
    if phase == "pretrain":
        return build_mae_model(cfg), lambda m, x: m(x)[0]
    model = build_classifier(cfg, cfg[phase], int(cfg["data"]["num_classes"]))
    return model, lambda m, x: torch.nn.functional.cross_entropy(m(x), torch.zeros(len(x), dtype=torch.long))


def model_input(model: torch.nn.Module, batch: int) -> torch.Tensor:
    enc = getattr(model, "encoder", model)
    return torch.randn(batch, enc.cfg.in_chans, *enc.cfg.input_size)


def measure(
    cfg: dict, phase: str, batches, dtype: torch.dtype | None, fake: bool = True
) -> tuple[int, list[dict]]:
    """(params, [saved_bytes at each batch]) of the phase's real model (random input, train mode),
    on fake tensors (no memory, no compute; the same bytes) unless fake=False."""
    with fake_tensors(fake) as small_values:
        torch.manual_seed(0)
        with small_values():  # the init's checks (e.g. trunc_normal_'s) read small values
            model, loss_fn = phase_model(cfg, phase)
        model.train()
        out = []
        for b in batches:
            x = model_input(model, b)
            with small_values():  # a fresh one: the weights and input are unknown in the forward
                out.append(saved_bytes(model, lambda m: loss_fn(m, x), dtype))  # noqa: B023 (called at once)
        return sum(p.numel() for p in model.parameters()), out


def run_amp(cfg: dict, amp: str | None = None) -> str:
    """The autocast setting a plan is for: `amp` if given, else the run's runtime.amp."""
    return str(amp or cfg["runtime"].get("amp") or "none").lower()


def cache_file() -> Path:
    root = os.environ.get("HIERA_CACHE") or Path.home() / ".cache" / "hiera-ablations"
    return Path(root) / "activations.json"


def measurement_key(cfg: dict, phase: str, amp: str) -> str:
    """What the saved activations depend on: the model, the MAE (pretraining), the input, the dtype.
    Per-phase regularisation (drop path, dropout) changes no shape and is left out; the version
    of the measuring method is in (entries measured another way are not reused)."""
    model = cfg["model"]
    key = {"model": model, "phase": "pretrain" if phase == "pretrain" else "classify", "amp": amp}
    key["version"] = MEASURE_VERSION
    key["input"] = [cfg["data"].get("input_size"), cfg["data"].get("num_frames")]
    if phase == "pretrain":
        key["mae"] = cfg["mae"]
    return json.dumps(key, sort_keys=True)


def activations(cfg: dict, phase: str, amp: str | None = None, cache: Path | None = None) -> Activations:
    """The phase's measured Activations, from the cache when this key was measured before."""
    amp = run_amp(cfg, amp)
    if amp not in AMP_DTYPES:
        raise PlanError(f"runtime.amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    cache = Path(cache or cache_file())
    key = measurement_key(cfg, phase, amp)
    table = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in table:
        params, (small, large) = measure(cfg, phase, MEASURE_BATCHES, AMP_DTYPES[amp])
        table[key] = asdict(Activations.fit(params, small, large, *MEASURE_BATCHES))
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, json.dumps(table, indent=0))
        except OSError as e:  # a read-only or full cache folder costs time, never the plan
            print(f"[note] the measurement is not cached ({e}); set HIERA_CACHE to a writable folder")
    a = table[key]
    pairs = lambda v: tuple(map(tuple, v))  # noqa: E731  (JSON gives lists)
    return Activations(a["params"], tuple(a["outside"]), pairs(a["blocks"]), pairs(a["inputs"]))


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PhasePlan:
    phase: str
    global_batch: int
    devices: int
    per_device: int
    accum: int
    grad_ckpt: int  # checkpointed blocks (the first N), 0 = off
    blocks: int
    memory: dict  # bytes per device: weights, grads, adamw, ddp_buckets, activations, recompute, total
    budget: float  # bytes usable per device (device memory minus the reserve)

    @property
    def fits(self) -> bool:
        return self.memory["total"] <= self.budget

    def record(self) -> dict:
        """What training reads (max_batch_per_device, grad_ckpt) and what the plan assumed (GiB)."""
        gib = {k: round(v / GIB, 2) for k, v in self.memory.items()}
        return {"max_batch_per_device": self.per_device, "grad_ckpt": self.grad_ckpt, "blocks": self.blocks,
                "accum_iter": self.accum, "peak_gib": gib["total"], "memory_gib": gib}  # fmt: skip


def phase_bytes(
    params: int, acts: Activations, batch: int, ckpt: int, devices: int, margin: float = 1.0
) -> dict:
    """Bytes per device; `margin` scales the activations (CUDA_AUTOCAST_MARGIN under autocast)."""
    mem = {k: params * v for k, v in BYTES_PER_PARAM.items() if k != "ddp_buckets" or devices > 1}
    mem["activations"] = margin * acts.saved(batch, ckpt)
    mem["recompute"] = margin * acts.recompute(batch, ckpt)
    mem["total"] = sum(mem.values())
    return mem


def plan_phase(
    cfg: dict, phase: str, device_mem_gib: float, devices: int, cache: Path | None = None
) -> PhasePlan:
    """The largest per-device batch that fits; checkpointing (fewest blocks) when it is < MIN_BATCH."""
    global_batch = int(cfg[phase]["batch_size"])
    per_rank, _ = plan_batch(global_batch, devices, None)
    budget = device_mem_gib * GIB * (1 - RESERVE_FRACTION) - RESERVE_FIXED
    acts = activations(cfg, phase, cache=cache)
    margin = CUDA_AUTOCAST_MARGIN if AMP_DTYPES.get(run_amp(cfg)) is not None else 1.0
    params = acts.params
    blocks = len(acts.blocks)
    sizes = sorted({d for d in range(1, per_rank + 1) if per_rank % d == 0}, reverse=True)

    def best(ckpt: int) -> int | None:
        return next(
            (b for b in sizes if phase_bytes(params, acts, b, ckpt, devices, margin)["total"] <= budget),
            None,
        )

    want = min(MIN_BATCH, per_rank)
    choice, ckpt = best(0), 0
    if choice is None or choice < want:
        for n in range(1, blocks + 1):
            b = best(n)
            if b is not None and b >= want:
                choice, ckpt = b, n
                break
        else:
            choice, ckpt = best(blocks), blocks
    if choice is None:  # not even batch 1 with every block checkpointed: report the smallest
        choice = 1
    per_device, accum = plan_batch(global_batch, devices, choice)
    mem = phase_bytes(params, acts, per_device, ckpt, devices, margin)
    return PhasePlan(phase, global_batch, devices, per_device, accum, ckpt, blocks, mem, budget)


def estimate_gib(cfg: dict, phase: str, batch: int, ckpt: bool | int, devices: int = 1) -> float:
    """The plan's peak estimate (GiB per device) for one phase at this per-device batch and
    checkpointing (True: every block), as plan_phase counts it, for comparing with a measured peak."""
    acts = activations(cfg, phase)
    blocks = len(acts.blocks) if ckpt is True else int(ckpt or 0)
    margin = CUDA_AUTOCAST_MARGIN if AMP_DTYPES.get(run_amp(cfg)) is not None else 1.0
    return phase_bytes(acts.params, acts, batch, blocks, devices, margin)["total"] / GIB


def plan_run(cfg: dict, device_mem_gib: float, devices: int, cache: Path | None = None) -> dict:
    """{phase: PhasePlan} for every phase of cfg["mode"]."""
    if device_mem_gib <= 0 or devices < 1:
        raise PlanError(f"--device-mem must be > 0 GiB and --devices >= 1, got {device_mem_gib}, {devices}")
    phases = ("pretrain", "finetune") if cfg["mode"] == "mae" else ("supervised",)
    return {p: plan_phase(cfg, p, device_mem_gib, devices, cache) for p in phases}


def apply_plan(cfg: dict, plans: dict, device_mem_gib: float) -> dict:
    """cfg with runtime.plan = {device_mem_gib, devices, <phase>: record} (training reads it)."""
    devices = next(iter(plans.values())).devices
    record = {"device_mem_gib": device_mem_gib, "devices": devices}
    record |= {p: plan.record() for p, plan in plans.items()}
    return {**cfg, "runtime": {**cfg["runtime"], "plan": record}}


def device_memory_gib() -> list[float]:
    """Each visible CUDA device's memory in GiB ([] without CUDA). The one place that asks the
    GPU: tests fake it to check the autoplan on the CPU."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_properties(i).total_memory / GIB for i in range(torch.cuda.device_count())]


def phase_runtime(runtime: dict, phase: str) -> tuple[int | None, bool | int]:
    """(max_batch_per_device, grad_ckpt) for a phase: the plan's when it has one, else runtime's."""
    planned = (runtime.get("plan") or {}).get(phase) or {}
    cap = planned.get("max_batch_per_device", runtime.get("max_batch_per_device"))
    return cap, planned.get("grad_ckpt", runtime.get("grad_ckpt") or 0)


def plan_table(named_plans: list[tuple[str, dict]]) -> str:
    """Markdown: one line per run and phase."""
    head = ["run", "phase", "global", "devices", "per device", "accum", "ckpt blocks", "weights+grads+AdamW",
            "activations", "peak / usable (GiB)", "fits"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, plans in named_plans:
        for p in plans.values():
            m = {k: v / GIB for k, v in p.memory.items()}
            state = m["weights"] + m["grads"] + m["adamw"] + m.get("ddp_buckets", 0.0)
            ckpt = "off" if p.grad_ckpt == 0 else f"{p.grad_ckpt}/{p.blocks}"
            acts = m["activations"] + m["recompute"]
            peak = f"{m['total']:.1f} / {p.budget / GIB:.1f}"
            cells = [name, p.phase, p.global_batch, p.devices, p.per_device, p.accum, ckpt, f"{state:.1f}",
                     f"{acts:.1f}", peak, "yes" if p.fits else "NO"]  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)
