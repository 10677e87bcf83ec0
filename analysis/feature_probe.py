"""Is an MAE encoder's output collapsed? Read a run's pretrained encoder on frozen inputs.

    python -m analysis.feature_probe RUN_FOLDER            # its pretrain/encoder.pth
    python -m analysis.feature_probe RUN_FOLDER --scratch  # the same model at random init

Prints, on the run's validation set (no augmentation):
- token spread: per clip/image, the mean distance of its final tokens from their mean, over the
  norm of that mean (0: every token is the same vector);
- token cosine: the mean cosine between the tokens of one clip/image (1: all point the same way);
- linear probe top-1: a linear classifier (L-BFGS, L2 1e-3) on the frozen pooled features of
  `--train-items` training items, scored on the validation set.

Only the pretrain phase has to have finished. This is how the video page of docs/results.md
measured the within-clip token collapse of MAE-pretrained rows a-e.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ablations.train.build import DamagedArtifact, build_classifier, build_data, data_info, load_encoder


def token_stats(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, N, C] -> (spread [B], cosine [B]) as the module docstring defines them."""
    mean = tokens.mean(1, keepdim=True)
    spread = (tokens - mean).norm(dim=-1).mean(1) / mean.norm(dim=-1).squeeze(1).clamp_min(1e-12)
    unit = F.normalize(tokens, dim=-1)
    return spread, (unit @ unit.transpose(1, 2)).mean((1, 2))


@torch.no_grad()
def features(model, dataset, batch: int = 50) -> dict[str, torch.Tensor]:
    """{pooled [n, C], labels [n], spread [n], cosine [n]} of a frozen classifier body."""
    out = {"pooled": [], "labels": [], "spread": [], "cosine": []}
    for i in range(0, len(dataset), batch):
        items = [dataset[j] for j in range(i, min(i + batch, len(dataset)))]
        tokens = model.forward_features(torch.stack([x for x, _ in items]))  # [B, N, C]
        spread, cosine = token_stats(tokens)
        out["pooled"].append(model.forward_head(tokens, pre_logits=True))
        out["labels"].append(torch.tensor([y for _, y in items]))
        out["spread"].append(spread)
        out["cosine"].append(cosine)
    return {k: torch.cat(v) for k, v in out.items()}


def linear_probe(train: dict, val: dict, num_classes: int, l2: float = 1e-3) -> float:
    """Top-1 (%) on val of a linear classifier fitted on train's standardised pooled features."""
    mu, sd = train["pooled"].mean(0), train["pooled"].std(0) + 1e-6
    a, b = (train["pooled"] - mu) / sd, (val["pooled"] - mu) / sd
    w = torch.zeros(a.shape[1], num_classes, requires_grad=True)
    c = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=300)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + c, train["labels"]) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100 * ((b @ w + c).argmax(1) == val["labels"]).float().mean().item()


class NoEncoder(ValueError):
    """The run has no MAE encoder (a supervised run)."""


def probe(
    run: Path, scratch: bool = False, train_items: int = 600, seed: int = 0, encoder: Path | None = None
) -> dict:
    """The run's probe (module docstring); `encoder`: read these weights instead of the run's own
    pretrain/encoder.pth (an unfinished pretraining's checkpoint, analysis/probe_search.py)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    encoder = encoder or run / "pretrain" / "encoder.pth"
    if not scratch and cfg.get("mode") != "mae":
        raise NoEncoder(
            f"{run} is a {cfg.get('mode')} run: it has no MAE encoder to probe. Pass the folder of an "
            "MAE run (mode mae), or --scratch to read the model at random init"
        )
    if not scratch and not encoder.exists():
        raise FileNotFoundError(f"{encoder} does not exist: the run's MAE pretraining has not finished "
                                "(or pass --scratch to read the model at random init)")  # fmt: skip
    info = data_info(cfg)
    torch.manual_seed(seed)
    model = build_classifier(cfg, cfg["finetune"], info["num_classes"]).eval()
    if not scratch:  # the finetune phase's loader: only the head may be missing
        load_encoder(model, encoder)
    train_cfg = {**cfg, "data": {**cfg["data"], "train_size": train_items}}
    train = features(model, build_data(train_cfg, "train", None))
    val = features(model, build_data(cfg, "val", None))
    return {
        "run": str(run),
        "weights": "random init" if scratch else "MAE encoder",
        "token_spread": round(val["spread"].mean().item(), 3),
        "token_cosine": round(val["cosine"].mean().item(), 3),
        "linear_probe_top1": round(linear_probe(train, val, info["num_classes"]), 1),
        "train_items": train_items,
        "val_items": len(val["labels"]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.feature_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("run", type=Path, help="a run folder (holds config.yaml and pretrain/encoder.pth)")
    p.add_argument("--scratch", action="store_true", help="read the model at random init instead")
    p.add_argument("--train-items", type=int, default=600, help="training items the probe fits on")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    if not (args.run / "config.yaml").exists():
        print(f"feature_probe: error: {args.run / 'config.yaml'} not found; pass a run folder "
              "(ablate.py --dry-run prints its path)", file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    try:
        print(json.dumps(probe(args.run, args.scratch, args.train_items)))
    except (FileNotFoundError, DamagedArtifact, NoEncoder) as e:  # no or an unreadable encoder: one line
        print(f"feature_probe: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
