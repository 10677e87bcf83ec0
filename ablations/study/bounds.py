"""The numbers a config may hold: every value that cannot train is refused before any work.

    check_numbers(cfg, name)   # ConfigError naming the key, its value and the range to use

Three checks, each for a reason:
- every number anywhere in the config (model.overrides too) is finite: inf and nan never train,
  and `int(inf)` later ends in an OverflowError far from the key that caused it;
- every integer fits in 32 bits (torch and numpy take seeds, sizes and counts as C ints);
- each key lies in its range. An upper end marks where a value stops being a recipe and becomes a
  typo: it would allocate without end (decoder_dim), run for ever (epochs) or diverge at its first
  step (lr, weight_decay, head_init_scale). The ends are far beyond any recipe of the paper.
"""

from __future__ import annotations

import math

from ablations.errors import ConfigError

INT_MAX = 2**31 - 1
MAX_BATCH = 2**20  # the paper's largest global batch is 4096
MAX_EPOCHS = 100_000  # the paper's longest schedule is 3200 epochs
# AdamW moves every weight by about lr per step: above 1 no network keeps its features.
MAX_LR = 1.0


def span(lo=None, hi=None, integer=False, open_lo=False, open_hi=False) -> dict:
    return {"lo": lo, "hi": hi, "integer": integer, "open_lo": open_lo, "open_hi": open_hi}


# Keys of every training phase (pretrain, finetune, supervised), checked in every phase present.
PHASE_SPANS = {
    "epochs": span(1, MAX_EPOCHS, integer=True),
    "batch_size": span(1, MAX_BATCH, integer=True),
    "accum_iter": span(1, MAX_BATCH, integer=True),
    "blr": span(0, None, open_lo=True),  # the lr it gives is checked against MAX_LR
    "lr": span(0, MAX_LR, open_lo=True),
    "weight_decay": span(0, 1),  # decoupled: each step keeps (1 - lr * wd) of every weight
    "warmup_epochs": span(0, MAX_EPOCHS),
    "min_lr": span(0, MAX_LR),
    "drop_path": span(0, 1, open_hi=True),
    "dropout": span(0, 1, open_hi=True),
    "clip_grad": span(0, None, open_lo=True),
    "layer_decay": span(0, 1, open_lo=True),
    "head_init_scale": span(0, 1, open_lo=True),  # 1 = the plain init; larger only inflates the logits
    "mixup": span(0, 10),  # Beta(alpha, alpha); the paper's 0.8
    "cutmix": span(0, 10),  # the paper's 1.0
    "smoothing": span(0, 1, open_hi=True),
    "train_size": span(1, INT_MAX, integer=True),
    "aug.hflip": span(0, 1),
    "aug.reprob": span(0, 1),
    "aug.repeated": span(1, 64, integer=True),
}
SPANS = {
    "data.num_classes": span(1, 100_000, integer=True),  # 2 or more: the data check says why
    "data.train_size": span(1, INT_MAX, integer=True),
    "data.val_size": span(1, INT_MAX, integer=True),
    "data.final_val_size": span(1, INT_MAX, integer=True),
    "data.num_frames": span(1, 1024, integer=True),
    "data.frame_stride": span(1, 1024, integer=True),
    "data.num_workers": span(0, 256, integer=True),
    "data.seed": span(0, INT_MAX, integer=True),
    "data.views.spatial": span(1, 64, integer=True),
    "data.views.temporal": span(1, 64, integer=True),
    "mae.mask_ratio": span(0, 1, open_lo=True, open_hi=True),
    "mae.decoder_depth": span(0, 64, integer=True),
    "mae.decoder_dim": span(1, 8192, integer=True),
    "mae.decoder_heads": span(1, 256, integer=True),
    "seed": span(0, INT_MAX, integer=True),
    "runtime.log_every": span(1, INT_MAX, integer=True),
    "runtime.eval_every": span(1, INT_MAX, integer=True),
    "runtime.threads": span(1, 4096, integer=True),
    "runtime.ckpt_every_steps": span(0, INT_MAX, integer=True),
    "runtime.max_batch_per_device": span(1, MAX_BATCH, integer=True),
    "runtime.sized_for_gib": span(0, 1e6, open_lo=True),
    "bench.warmup": span(0, 10_000, integer=True),
    "bench.iters": span(1, 100_000, integer=True),
    "bench.rounds": span(1, 1000, integer=True),
    "bench.processes": span(1, 64, integer=True),
}
PHASE_SECTIONS = ("pretrain", "finetune", "supervised")


def get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def numbers(tree, prefix: str = ""):
    """(dotted key, value) of every number in a config tree (list items as key[i])."""
    if isinstance(tree, dict):
        pairs = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in tree.items()]
    else:
        pairs = [(f"{prefix}[{i}]", v) for i, v in enumerate(tree)]
    for key, v in pairs:
        if isinstance(v, (dict, list, tuple)):
            yield from numbers(v, key)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield key, v


def check_span(name: str, key: str, value, lo=None, hi=None, integer=False, open_lo=False, open_hi=False):
    """ConfigError unless value (None passes) is a number in the span."""
    if value is None:
        return
    bad_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad_type or not math.isfinite(value) or (integer and value != int(value)):
        what = "an integer" if integer else "a finite number"
        raise ConfigError(f"{name}: {key}={value!r} must be {what}; set it with --set {key}=<value>.")
    low_bad = lo is not None and (value <= lo if open_lo else value < lo)
    high_bad = hi is not None and (value >= hi if open_hi else value > hi)
    if low_bad or high_bad:
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        shown = f"{left}{lo}, {'inf' if hi is None else f'{hi:g}'}{right}"
        raise ConfigError(f"{name}: {key}={value!r} must lie in {shown}; set it with --set {key}=<value>.")


def check_numbers(cfg: dict, name: str = "config") -> None:
    """Finite numbers everywhere, 32-bit integers, each key in its span, a sane effective lr."""
    for key, value in numbers(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{name}: {key}={value!r} is not a finite number; set it with --set {key}=<value>."
            )
        if abs(value) > INT_MAX and not isinstance(value, float):
            raise ConfigError(
                f"{name}: {key}={value} does not fit in 32 bits; set it with --set {key}=<value>."
            )
    for key, bounds in SPANS.items():
        check_span(name, key, get(cfg, key), **bounds)
    for phase in PHASE_SECTIONS:
        if isinstance(cfg.get(phase), dict):
            for key, bounds in PHASE_SPANS.items():
                check_span(name, f"{phase}.{key}", get(cfg[phase], key), **bounds)
            check_lr(cfg[phase], phase, name)


def check_lr(pc: dict, phase: str, name: str) -> None:
    """The lr a phase trains with (lr, or blr * batch / 256) is at most MAX_LR and at least min_lr."""
    if pc.get("lr") is None and pc.get("blr") is None:
        return  # validate.check_config says to set one
    lr = pc["lr"] if pc.get("lr") is not None else pc["blr"] * pc["batch_size"] / 256
    key = f"{phase}.lr" if pc.get("lr") is not None else f"{phase}.blr"
    if lr > MAX_LR:
        raise ConfigError(
            f"{name}: {key}={pc.get('lr') or pc['blr']!r} gives lr {lr:g} (lr = blr * batch_size / 256); "
            f"above {MAX_LR:g} AdamW moves every weight by about lr per step and nothing trains. Lower {key}."
        )
    if (pc.get("min_lr") or 0) > lr:
        raise ConfigError(
            f"{name}: {phase}.min_lr={pc['min_lr']!r} exceeds the phase's lr {lr:g}: the schedule would "
            f"rise instead of decay. Lower {phase}.min_lr."
        )
