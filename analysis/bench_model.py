"""Inference speed of the configurable model, side by side with timm, and Table 1's speed column.

    python -m analysis.bench_model                      # CPU, fp32, batch 8, 224 px (the defaults)
    python -m analysis.bench_model --device cuda --dtype fp16 --batch-sizes 32 64 128 256
    python -m analysis.bench_model --table1 image --table1-size L     # rows mvitv2..f as ratios
    python -m analysis.bench_model --table1 image --attn-backend both  # math and PyTorch's pick
    python -m analysis.bench_model --table1 image --csv analysis/figures/bench/model_speed.csv

Part 1 times our row f (size B) against timm's hiera_base_224 and our row mvitv2 against timm's
mvitv2_base, alternating the two models for several rounds and keeping each one's best, so both
see the same machine load. Part 2 times every Table 1 row and prints its speed as a ratio to
the mvitv2 row beside the paper's A100 ratios (analysis/paper_numbers.yaml), and its
multiply-adds; the line "mvitv2 with Hiera conventions" (models.hiera_conventions) sits between
mvitv2 and a, because most of row a's MAC change comes from that switch, not from the positions.
Attention runs under SDPBackend.MATH by default (--attn-backend math: the paper's protocol, no
FlashAttention); auto lets PyTorch pick its fused kernels, both prints the two. `--csv PATH`
appends the lines to PATH (part 1) and to PATH's name + _table1.csv (part 2), each headed by the
command and date when new: docs/results.md's speed figures are analysis/figures/bench/model_speed*.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import timm
import torch

import models
from ablations.store.measurements import write_measurements
from analysis.collect import paper_speedup
from analysis.tables import CONVENTIONS_LABEL
from models.summary import count_macs
from models.throughput import ATTN_BACKENDS, measure_throughput

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def side_by_side(pairs, shape, args) -> list[tuple[str, float, float]]:
    """[(label, ours/s, theirs/s)]: alternating rounds, best of each."""
    out = []
    for label, ours, theirs in pairs:
        best = [0.0, 0.0]
        for _ in range(args.rounds):
            for i, m in enumerate((ours, theirs)):
                best[i] = max(best[i], measure(m, shape, args))
        out.append((label, *best))
    return out


def measure(model, shape, args, attn_backend: str | None = None) -> float:
    return measure_throughput(
        model, shape, args.batch_sizes, DTYPES[args.dtype], args.device, warmup=args.warmup, iters=args.iters,
        attn_backend=attn_backend or args.backends[0],
    )  # fmt: skip


def gmacs(size: str, step: str, modality: str, **overrides) -> float:
    """Multiply-adds (G, one sample) with the model's own counter; on the meta device, so free."""
    with torch.device("meta"):
        return count_macs(models.build(size, step=step, modality=modality, **overrides)) / 1e9


def table1_lines():
    """(label, step, overrides) of Table 1's speed column, with the conventions line after mvitv2."""
    for step in models.steps():
        yield step, step, {}
        if step == models.rows_first():
            yield CONVENTIONS_LABEL, step, models.hiera_conventions()


def timm_pairs(size_name: str):
    for step, name in (("f", f"hiera_{size_name}_224"), ("mvitv2", f"mvitv2_{size_name}")):
        theirs = timm.create_model(name, num_classes=1000).eval()
        ours = models.build(
            {"base": "B", "tiny": "T", "small": "S", "large": "L"}[size_name], step=step
        ).eval()
        yield f"row {step} vs timm {name}", ours, theirs


TIMM_COLUMNS = ["device", "dtype", "batch_sizes", "model", "ours_per_s", "timm_per_s", "ours_over_timm"]
TABLE1_COLUMNS = ["device", "dtype", "batch_sizes", "size", "modality", "attn_backend", "row", "gmacs",
                  "per_s", "over_mvitv2", "paper_over_mvitv2"]  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, choices=list(DTYPES), help="fp16 on GPU, fp32 on CPU by default")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per pair (best kept)")
    p.add_argument("--timm-size", default="base", choices=["tiny", "small", "base", "large"])
    p.add_argument("--skip-timm", action="store_true")
    p.add_argument("--table1", default="none", choices=["none", "image", "video", "both"])
    p.add_argument("--table1-size", default="L", choices=list(models.SIZES))
    p.add_argument(
        "--attn-backend",
        default="math",
        choices=[*ATTN_BACKENDS, "both"],
        help="math: SDPBackend.MATH, the paper's protocol (default); auto: PyTorch's pick",
    )
    p.add_argument("--csv", metavar="PATH", help="append the timm lines to PATH and Table 1's to "
                   "<PATH name>_table1.csv (docs/results.md shows analysis/figures/bench/)")  # fmt: skip
    args = p.parse_args(argv)
    command = " ".join(["python -m analysis.bench_model", *(sys.argv[1:] if argv is None else argv)])
    args.backends = list(ATTN_BACKENDS) if args.attn_backend == "both" else [args.attn_backend]
    args.dtype = args.dtype or ("fp16" if str(args.device).startswith("cuda") else "fp32")
    device_name = torch.cuda.get_device_name() if str(args.device).startswith("cuda") else "CPU"
    threads = torch.get_num_threads()
    print(f"device {device_name} ({threads} threads), {args.dtype}, batch sizes {args.batch_sizes}, "
          f"attention {args.attn_backend}")  # fmt: skip

    if not args.skip_timm:
        print("\n| model | ours (im/s) | timm (im/s) | ours / timm |\n|---|---|---|---|")
        setting = [device_name, args.dtype, " ".join(map(str, args.batch_sizes))]
        lines = []
        for label, ours, theirs in side_by_side(timm_pairs(args.timm_size), (3, 224, 224), args):
            print(f"| {label} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
            lines.append([*setting, label, f"{ours:.1f}", f"{theirs:.1f}", f"{ours / theirs:.2f}x"])
        if args.csv:
            write_measurements(args.csv, command, TIMM_COLUMNS, lines, append=True)

    modalities = {"none": [], "both": ["image", "video"]}.get(args.table1, [args.table1])
    for modality in modalities:
        unit = "im/s" if modality == "image" else "clip/s"
        print(f"\nTable 1 speed, size {args.table1_size}, {modality}")
        cols = [c for b in args.backends for c in (f"ours {b} ({unit})", f"{b} / mvitv2")]
        head = ["row", "GMACs", *cols, "paper A100 / mvitv2"]
        print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
        base, lines = {}, []
        for label, step, over in table1_lines():
            m = models.build(args.table1_size, step=step, modality=modality, **over).eval()
            cells = [label, f"{gmacs(args.table1_size, step, modality, **over):.2f}"]
            paper = f"{paper_speedup(step, modality):.2f}x" if label == step else "–"
            for b in args.backends:
                speed = max(measure(m, (3, *m.cfg.input_size), args, b) for _ in range(args.rounds))
                base.setdefault(b, speed)
                cells += [f"{speed:.2f}", f"{speed / base[b]:.2f}x"]
                setting = [device_name, args.dtype, " ".join(map(str, args.batch_sizes)), args.table1_size]
                ratio = f"{speed / base[b]:.2f}x"
                lines.append([*setting, modality, b, label, cells[1], f"{speed:.2f}", ratio,
                              "" if paper == "–" else paper])  # fmt: skip
            print("| " + " | ".join([*cells, paper]) + " |")
            del m
        if args.csv:
            path = Path(args.csv)
            write_measurements(
                path.with_name(f"{path.stem}_table1.csv"), command, TABLE1_COLUMNS, lines, append=True
            )


if __name__ == "__main__":
    main()
