"""The factories of the training layer: the only places that touch models, MAE and data.

A phase (ablations/train/phases.py) and the memory plan (ablations/train/memory_plan.py) both
build their models here, so the plan measures exactly what training runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from ablations.data import build_dataset, dataset_info
from ablations.errors import RunError
from ablations.store.hashing import file_sha256
from models.build import build
from models.convert import load_pretrained
from models.mae import build_mae


def data_info(cfg: dict) -> dict:
    return dataset_info(cfg["data"])


def phase_data(cfg: dict, phase: str) -> dict:
    """cfg with the phase's training set size: pretrain.train_size (MAE pretraining on more
    unlabeled items than finetuning has labels; the built-in sets and capped folders grow from
    the same first items) replaces data.train_size for that phase only."""
    size = cfg[phase].get("train_size")
    return cfg if size is None else {**cfg, "data": {**cfg["data"], "train_size": size}}


def build_data(cfg: dict, split: str, aug: dict | None):
    return build_dataset(cfg["data"], split=split, aug=aug)


def build_mae_model(cfg: dict) -> torch.nn.Module:
    return build_mae(cfg["model"], cfg["mae"], drop_path=cfg["pretrain"].get("drop_path", 0.0))


def build_classifier(cfg: dict, phase_cfg: dict, num_classes: int) -> torch.nn.Module:
    m = cfg["model"]
    overrides = dict(m.get("overrides") or {})
    # The phase's regularisation wins over the row's defaults.
    overrides["drop_path"] = phase_cfg.get("drop_path", 0.0)
    if phase_cfg.get("head_init_scale") is not None:
        overrides["head_init_scale"] = phase_cfg["head_init_scale"]
    if phase_cfg.get("dropout") is not None:
        overrides["drop_rate"] = phase_cfg["dropout"]  # ModelConfig calls head dropout drop_rate
    return build(
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
        # A RunError: printed without "rerun to resume", since a rerun would fail the same way.
        raise RunError(
            f"pretrained encoder {path} lacks non-head weights: {not_head[:8]}. Every rerun fails the same "
            "way: the finetuned model has layers the MAE encoder does not (e.g. the last q-pool, which MAE "
            "drops, with parameters: pool: conv). Train this row with mode: supervised until the encoder "
            "keeps it."
        )
    if unexpected:
        warnings.warn(
            f"ignored {len(unexpected)} unexpected encoder keys, e.g. {unexpected[:4]}", stacklevel=2
        )


def load_init(model: torch.nn.Module, path: Path, sha256: str | None = None) -> dict:
    """finetune.init: weights from a pretrained checkpoint. Ours (a run's pretrain/encoder.pth or
    pretrain/checkpoint-last.pth, whose MAE keys sit under "encoder.") or the official Hiera / timm
    formats (MAE or finetuned, image or video; models/convert.py). Everything but the head must
    match; a missing head, or one for another number of classes, starts fresh."""
    if sha256 is not None and file_sha256(path) != sha256:
        raise RuntimeError(f"{path} changed since this run was configured (sha256 differs); rerun ablate.py")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("model_state", "model", "state_dict"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if any(k.startswith("encoder.") for k in state):  # our MAE: keep the encoder, drop the decoder
        state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    return load_pretrained(model, state, strict=True)


def build_criterion(phase_cfg: dict, num_classes: int):
    """(criterion, mixup_fn or None): SoftTargetCE under Mixup/CutMix (which also smooths labels),
    else label-smoothing CE, else plain CE."""
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
