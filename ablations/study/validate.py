"""Every value of a resolved config checked before any work, in one place.

    check_config(cfg, name)   # ConfigError naming the key, the value and the fix

Called by config.resolve() for every run, so --dry-run and --bench see the same errors as
training. The data folder itself is checked by ablations/data_check.py (it reads the disk).
"""

from __future__ import annotations

import math
from dataclasses import fields

from ablations.data import DATASETS
from ablations.data.common import repeats
from ablations.data.transforms import parse_randaug
from ablations.errors import ConfigError
from ablations.study.bounds import MAX_BATCH, check_numbers, check_span, get
from ablations.study.leak import GEOMETRY, leak_message
from models import SIZES, ModelConfig, model_config, steps
from models.compile import MODES as COMPILE_MODES
from models.hints import did_you_mean

MODES = ("mae", "supervised")
PHASES = {"mae": ("pretrain", "finetune"), "supervised": ("supervised",)}
# Closed vocabularies: the sizes the model defines, the datasets data/ has.
CHOICES = {
    "model.size": tuple(SIZES),
    "mae.target": ("pixel", "hog"),
    "runtime.amp": ("bf16", "fp16", "none"),
    "data.name": tuple(DATASETS),
}
# Model fields a training phase sets (phase key -> ModelConfig field): an override would be
# silently replaced by the phase's value, so it is refused with the key to use instead.
PHASE_OWNED = {"drop_path": "drop_path", "drop_rate": "dropout", "head_init_scale": "head_init_scale"}
# Model fields the harness sets itself, never a user's flag: each with where it comes from.
SET_ELSEWHERE = {
    "params_q_pool": "the MAE encoder sets it from q_pool",
    "mua_lag": "Hiera's one-block lag of mask unit attention, kept fixed on every row",
    "num_classes": "set from the data: use data.num_classes",
    "in_chans": "the data's 3 colour channels",
}
# The model flags a user may write (model.overrides, an inline row's model:).
USER_FLAGS = tuple(f.name for f in fields(ModelConfig) if f.name not in {*PHASE_OWNED, *SET_ELSEWHERE})


def not_a_flag(key: str, phases: tuple[str, ...] = ("pretrain", "finetune", "supervised")) -> str:
    """Why a model field is not a user's flag, and what to write instead ('' for a flag)."""
    if key in PHASE_OWNED:
        keys = ", ".join(f"{p}.{PHASE_OWNED[key]}" for p in phases)
        return f"{key} is set per training phase; use --set {keys} instead."
    return f"{key} is not a flag: {SET_ELSEWHERE[key]}." if key in SET_ELSEWHERE else ""


def fixed_classes(dataset) -> int | None:
    """The class count a dataset fixes itself (CIFAR-100: 100), whatever data.num_classes says."""
    module = DATASETS.get(dataset) if isinstance(dataset, str) else None
    return getattr(module, "NUM_CLASSES", {}).get(dataset)


def check_config(cfg: dict, name: str = "config") -> None:
    """Every value of cfg, the model it builds and the fit between model, MAE and data."""
    check_numbers(cfg, name)  # first: what follows may do arithmetic on the numbers
    for key, valid in CHOICES.items():
        value = get(cfg, key)
        if value not in valid:
            raise ConfigError(f"{name}: {key}={value!r} is not valid.{did_you_mean(value, valid)}")
    row = cfg["model"]["step"]
    if row not in steps():
        raise ConfigError(f"Unknown row {row!r}.{did_you_mean(row, steps())}")
    if cfg["mode"] not in MODES:
        raise ConfigError(f"Unknown mode {cfg['mode']!r}.{did_you_mean(cfg['mode'], MODES)}")
    ckpt = cfg["runtime"].get("grad_ckpt")
    if not (isinstance(ckpt, bool) or (isinstance(ckpt, int) and ckpt >= 0)):
        raise ConfigError(
            f"{name}: runtime.grad_ckpt={ckpt!r}: use true (every block), false, or N >= 0 (first N blocks)."
        )
    if cfg["runtime"].get("compile") not in COMPILE_MODES:
        raise ConfigError(
            f"{name}: runtime.compile={cfg['runtime'].get('compile')!r}: use false, true or model (the "
            "whole model), or blocks (each transformer block: shorter compile, see models/compile.py)."
        )
    if cfg["mode"] == "mae" and row == "mvitv2":
        built_on = " (an inline row built on mvitv2: build it from a, i.e. `from: a`)" if cfg["model"].get(
            "overrides") else ""  # fmt: skip
        raise ConfigError(
            f"{name}: row mvitv2 cannot be MAE-pretrained{built_on}: its relative positions and overlapping "
            "convs are not sparse (that is what rows a-d remove). Use --mode supervised, or a row from a on."
        )
    for phase in PHASES[cfg["mode"]]:
        _check_phase(cfg[phase], phase, name)
    bench = cfg.get("bench") or {}
    if not all(isinstance(b, int) and 1 <= b <= MAX_BATCH for b in bench.get("batch_sizes") or [1]):
        raise ConfigError(f"{name}: bench.batch_sizes={bench['batch_sizes']!r} must be positive integers.")
    fixed, classes = fixed_classes(cfg["data"]["name"]), cfg["data"]["num_classes"]
    if fixed is not None and classes != fixed:
        raise ConfigError(
            f"{name}: data.num_classes={classes!r}, but {cfg['data']['name']} has {fixed} classes: "
            f"set data.num_classes={fixed}, or leave it out (it follows data.name)."
        )
    most = getattr(DATASETS[cfg["data"]["name"]], "MAX_CLASSES", None)
    if most is not None:
        check_span(name, "data.num_classes", cfg["data"]["num_classes"], 2, most, integer=True)
    model = _check_model(cfg, name)
    if cfg["mode"] == "mae":
        _check_mae(cfg, model, name)
    _check_input_size(cfg, model, name)
    for phase in PHASES[cfg["mode"]]:
        own = cfg[phase].get("train_size")
        key = f"{phase}.train_size" if own is not None else "data.train_size"
        size, bs = (own if own is not None else get(cfg, "data.train_size")), cfg[phase]["batch_size"]
        if cfg["data"]["name"].startswith("builtin") and size is not None and size < bs:
            raise ConfigError(
                f"{name}: {key}={size} cannot fill one {phase} batch of {bs}: "
                f"lower {phase}.batch_size or raise {key}."
            )


def _check_phase(pc: dict, phase: str, name: str) -> None:
    if pc.get("lr") is None and pc.get("blr") is None:
        raise ConfigError(f"{name}: {phase}.lr and {phase}.blr are both null; set one, e.g. {phase}.blr=1e-3")
    if pc.get("warmup_epochs") and pc["warmup_epochs"] > pc["epochs"]:
        raise ConfigError(
            f"{name}: {phase}.warmup_epochs={pc['warmup_epochs']} exceeds {phase}.epochs={pc['epochs']}: "
            "the schedule would never leave warmup. Lower warmup_epochs."
        )
    betas = pc.get("betas")
    if betas is not None and not (len(betas) == 2 and all(0 <= b < 1 for b in betas)):
        raise ConfigError(f"{name}: {phase}.betas={betas!r} must be two numbers in [0, 1).")
    aug = pc.get("aug") or {}
    scale = aug.get("rrc_scale")
    if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise ConfigError(
            f"{name}: {phase}.aug.rrc_scale={scale!r} must be [low, high], 0 < low <= high <= 1"
        )
    if aug.get("randaug"):
        try:
            parse_randaug(str(aug["randaug"]))
        except ValueError as e:
            raise ConfigError(f"{name}: {phase}.aug.randaug: {e}") from None
    try:
        repeated = repeats(aug)
    except ValueError as e:
        raise ConfigError(f"{name}: {phase}.{e}") from None
    if pc["batch_size"] % repeated:
        raise ConfigError(
            f"{name}: {phase}.batch_size={pc['batch_size']} counts clips, {repeated} per video "
            f"({phase}.aug.repeated): use a multiple of {repeated}."
        )


def _check_model(cfg: dict, name: str) -> ModelConfig:
    """The ModelConfig the run builds; ConfigError for unknown, phase-owned or invalid overrides."""
    m, overrides = cfg["model"], dict(cfg["model"].get("overrides") or {})
    for key in overrides:
        if not_a_flag(key):
            raise ConfigError(f"{name}: model.overrides.{not_a_flag(key, PHASES[cfg['mode']])}")
        if key not in USER_FLAGS:
            hint = did_you_mean(key, USER_FLAGS, [*USER_FLAGS, *PHASE_OWNED])
            raise ConfigError(f"{name}: unknown model override {key!r}.{hint}")
    try:
        return model_config(m["size"], m["step"], m["modality"], **overrides)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name}: model.overrides {overrides} do not make a valid model: {e}") from None


def _check_sparse(cfg: dict, model: ModelConfig, name: str) -> None:
    """Flag combinations sparse MAE cannot train, then the no-leak check for rows that are not
    built-in (study/leak.py): both before any work."""
    if cfg["mae"].get("dense"):
        return
    if model.position == "relative":
        raise ConfigError(
            f"{name}: position: relative cannot be trained with sparse MAE (masked units are deleted; "
            "relative positions index the whole grid). Fix: position: absolute, or mode: supervised."
        )
    if model.overlap and not model.separate_and_pad:
        raise ConfigError(
            f"{name}: overlap: true under MAE needs separate_and_pad: true (the pools would read across "
            "deleted mask units). Fix: add separate_and_pad: true (as rows a-c), or overlap: false."
        )
    m = cfg["model"]
    overrides = {k: v for k, v in (m.get("overrides") or {}).items() if k not in GEOMETRY}
    if overrides:
        leak = leak_message(m["step"], m["modality"], overrides)
        if leak:
            raise ConfigError(
                f"{name}: this row leaks under sparse MAE: {leak}, so pretraining could copy what it "
                f"should predict. Fix the flags {overrides}, or train it with mode: supervised."
            )


def _check_mae(cfg: dict, model: ModelConfig, name: str) -> None:
    _check_sparse(cfg, model, name)
    units = math.prod(model.mask_spatial_shape)
    ratio = cfg["mae"]["mask_ratio"]
    keep = int(units * (1 - ratio))
    if not 1 <= keep <= units - 1:
        lo, hi = 1 / units, 1 - 1 / units
        raise ConfigError(
            f"{name}: mae.mask_ratio={ratio} keeps {keep} of the model's {units} mask units; at least one "
            f"must be kept and one masked: use a ratio in [{lo:.4g}, {hi:.4g}]."
        )
    if cfg["mae"]["decoder_dim"] % cfg["mae"]["decoder_heads"]:
        raise ConfigError(
            f"{name}: mae.decoder_dim={cfg['mae']['decoder_dim']} is not divisible by "
            f"mae.decoder_heads={cfg['mae']['decoder_heads']}."
        )


def data_input_size(data: dict, modality: str) -> tuple[int, ...]:
    """The input the data pipeline produces: (H, W), or (T, H, W) for video."""
    size = data.get("input_size")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise ConfigError(f"data.input_size={size!r} must be a positive int or [H, W], e.g. [32, 32].")
    return (data["num_frames"], *hw) if modality == "video" else hw


def _check_input_size(cfg: dict, model: ModelConfig, name: str) -> None:
    m = cfg["model"]
    size = data_input_size(cfg["data"], m["modality"])
    if size == model.input_size:
        return
    fits = [s for s in SIZES if model_config(s, m["step"], m["modality"]).input_size == size]
    sizes = f"model.size {' or '.join(fits)} (--set model.size={fits[0]})" if fits else "no model size"
    video = m["modality"] == "video"
    key, verb = ("data.input_size and data.num_frames", "give") if video else ("data.input_size", "gives")
    try:
        model_config(m["size"], m["step"], m["modality"], **{**m["overrides"], "input_size": size})
        override = f", or keep {m['size']} with --set model.overrides.input_size={list(size)}"
    except ValueError:
        override = f" (model.overrides.input_size cannot make {m['size']} take it)"
    have, want = "x".join(map(str, size)), "x".join(map(str, model.input_size))
    raise ConfigError(
        f"{name}: {key} {verb} inputs of {have} but model {m['size']} takes {want}. Set {key} to match "
        f"the model; {sizes} takes {have}{override}."
    )
