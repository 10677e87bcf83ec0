"""The factories of the training layer: the only places that touch models, MAE and data.

A phase (ablations/train/phases.py) and the memory plan (ablations/train/memory_plan.py) both
build their models here, so the plan measures exactly what training runs.
"""

from __future__ import annotations

import re
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


class DamagedArtifact(RunError):
    """A file an earlier phase wrote cannot be read; `phase` names the phase that writes it
    (phases.run_training redoes it)."""

    def __init__(self, path: Path, phase: str, error: BaseException):
        why = (str(error).splitlines() or [""])[0][:120]
        super().__init__(f"{path} is unreadable ({type(error).__name__}: {why})")
        self.path, self.phase = Path(path), phase


def load_encoder(model: torch.nn.Module, path: Path) -> list[str]:
    """Load MAE encoder weights into a classifier; only the head may be missing. Returns the
    encoder keys the classifier has no place for (unused_weights_note says why). An unreadable
    or wrong file (truncated, another model's): DamagedArtifact naming it and the pretrain phase."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a state dict")
        missing, unexpected = model.load_state_dict(state, strict=False)  # wrong shapes: RuntimeError
        not_head = [k for k in missing if "head" not in k]
        if not_head:
            raise KeyError(f"lacks non-head weights: {not_head[:8]}")
    except Exception as e:  # truncated, a bad pickle, missing, another model's: all mean "write it again"
        raise DamagedArtifact(path, "pretrain", e) from None
    return list(unexpected)


KV_POOL_KEY = re.compile(r"blocks\.(\d+)\.attn\.(pool|norm)_[kv]\.")


def unused_weights_note(keys: list[str]) -> str | None:
    """One line on the MAE encoder weights a classifier leaves unused, or None if there are none.
    The known case: a row with conv (or other parametrised) KV pooling and no stride-1 pools. The
    MAE encoder skips the last q-pool (every mask unit keeps its tokens), so the adaptive KV
    stride of its last stage stays 2 and K/V are pooled there; the classifier pools Q there
    instead, its KV stride is 1, and without stride-1 pools it has no KV pool to load them into."""
    if not keys:
        return None
    blocks = sorted({int(m[1]) for k in keys if (m := KV_POOL_KEY.match(k))})
    if len(blocks) and all(KV_POOL_KEY.match(k) for k in keys):
        where = f"block {blocks[0]}" if len(blocks) == 1 else f"blocks {blocks[0]}-{blocks[-1]}"
        return (
            f"[finetune] {len(keys)} pretrained weights unused, the K/V pools of {where}: MAE skips the "
            "last q-pool, so its last stage pools K/V with stride 2; the classifier's KV stride there "
            "is 1, and without stride-1 pools this row has no KV pool"
        )
    return f"[finetune] {len(keys)} pretrained weights have no place in the classifier, unused: {keys[:4]}"


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
