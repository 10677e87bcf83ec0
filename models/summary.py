"""Params, multiply-adds, and tokens / attention per stage for every row and size.

    python -m models.summary                       # rows mvitv2..f at sizes cpu-xs, T, B, L (images)
    python -m models.summary --sizes B L --modality video
    python -m models.summary --sizes B --steps f --set pool=avg   # ModelConfig overrides
    python -m models.summary --sizes T B B+ L H --steps mvitv2 f --modality image video \
        --csv analysis/figures/bench/model_sizes.csv              # docs/model.md's table

MACs follow the paper (fvcore convention, multiply-adds): torch.utils.flop_counter counts 2 per
multiply-add, and counts nothing for scaled_dot_product_attention on the CPU unless the MATH
backend runs it, so we count under that backend and halve.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ablations.store.measurements import write_measurements

from .hvit import HierarchicalViT
from .steps import SIZES, model_config, steps


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(
    model: torch.nn.Module,
    input_shape: tuple[int, ...] | None = None,
    x: torch.Tensor | None = None,
    **forward_kwargs,
) -> int:
    """Multiply-adds of one forward pass, in eval mode: on one zero sample of `input_shape`
    (default: the model's input), or on the batch `x` when given (then the total for the batch).
    The one MAC counter of the project (analysis.bench_mae uses it too)."""
    if x is None:
        x = torch.zeros(1, *(input_shape or (model.cfg.in_chans, *model.cfg.input_size)))
    was_training = model.training
    model.eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, **forward_kwargs)
    model.train(was_training)
    return counter.get_total_flops() // 2


def stage_table(model) -> list[dict]:
    """Per stage: blocks, channels, heads, tokens, tokens per mask unit, attention kinds."""
    rows = []
    for s in sorted({b.stage for b in model.specs}):
        blocks = [b for b in model.specs if b.stage == s]
        kinds = sorted({b.attention for b in blocks})
        kv = [b for b in blocks if b.attention == "global" and b.kv_pool is not None]
        rows.append(
            dict(
                stage=s + 1,
                blocks=len(blocks),
                dim=blocks[-1].dim_out,
                heads=blocks[-1].heads,
                tokens=math.prod(blocks[-1].out_grid),
                grid="x".join(map(str, blocks[-1].out_grid)),
                unit="x".join(map(str, model.stage_unit_sizes[s])),
                attention="+".join(kinds) + (f" (kv/{kv[-1].kv_pool.stride[-1]})" if kv else ""),
            )
        )
    return rows


def summarize(size: str, step: str, modality: str = "image", **overrides) -> dict:
    model = HierarchicalViT(model_config(size, step, modality, **overrides))
    return dict(
        size=size,
        step=step,
        modality=modality,
        params_m=count_params(model) / 1e6,
        gmacs=count_macs(model) / 1e9,
        stages=stage_table(model),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["cpu-xs", "T", "B", "L"], choices=list(SIZES))
    p.add_argument("--steps", nargs="+", default=steps(), choices=steps())
    p.add_argument("--modality", nargs="+", default=["image"], choices=["image", "video"])
    p.add_argument(
        "--csv", metavar="PATH", help="also write size, step, modality, params_m, gmacs to this CSV"
    )
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="ModelConfig overrides for every row, values as YAML (pool=avg, overlap=true)",
    )
    args = p.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set {item!r}: write KEY=VALUE, e.g. pool=avg")
        overrides[key] = yaml.safe_load(value)
    print(f"{'size':>6} {'step':>7} {'params (M)':>11} {'GMACs':>8}   stages: tokens (unit) attention")
    lines = []
    for modality in args.modality:
        for size in args.sizes:
            for step in args.steps:
                # shapes only: counting needs no memory, init or graph (and main() may be called
                # in-process, so grad mode is not switched off globally)
                with torch.device("meta"), torch.no_grad():
                    s = summarize(size, step, modality, **overrides)
                stages = "; ".join(f"{r['grid']} ({r['unit']}) {r['attention']}" for r in s["stages"])
                print(f"{size:>6} {step:>7} {s['params_m']:>11.2f} {s['gmacs']:>8.2f}   {stages}")
                lines.append([size, step, modality, f"{s['params_m']:.1f}", f"{s['gmacs']:.2f}"])
    if args.csv:
        command = " ".join(["python -m models.summary", *(sys.argv[1:] if argv is None else argv)])
        note = "GMACs per sample, 224 px images, 16x224x224 clips (per view)"
        write_measurements(args.csv, command, ["size", "step", "modality", "params_m", "gmacs"], lines, note)


if __name__ == "__main__":
    main()
