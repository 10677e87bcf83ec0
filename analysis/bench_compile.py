"""torch.compile vs eager: training-step time per Table 1 row (runtime.compile), timed side by side.

    .venv/bin/python -m analysis.bench_compile      # rows mvitv2..f + MAE f, size B, 224 px, batch 2
    .venv/bin/python -m analysis.bench_compile --rows f --mae --size cpu-s --batch 8   # no MAE row
    .venv/bin/python -m analysis.bench_compile --modes model blocks   # whole model and per block
    .venv/bin/python -m analysis.bench_compile --modes blocks model --csv analysis/figures/bench/compile.csv

One step is forward + backward + AdamW of the classifier (cross-entropy), or of the sparse MAE
(`--mae` rows). Each compiled copy (`--modes`: "model" = torch.compile of the whole model,
runtime.compile=true; "blocks" = each transformer block, runtime.compile=blocks) is a second model
with the same weights; its first call (the compile, inductor) is timed separately, then eager and
compiled steps alternate so that load drift on a shared machine hits all alike. `--csv PATH`
also writes the table as a CSV headed by the command and date (docs/scale.md's table is
analysis/figures/bench/compile.csv).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

import models
from ablations.store.measurements import write_measurements
from analysis.bench_mae import time_interleaved
from models.compile import compile_for_training
from models.mae import build_mae

ROWS = ("mvitv2", "a", "b", "c", "d", "e", "f")


def training_step(model, x: torch.Tensor, y: torch.Tensor | None):
    """A closure: one forward + backward + AdamW step of `model` (MAE when y is None)."""
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        out = model(x)
        loss = out[0] if y is None else torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def compare(eager: torch.nn.Module, x, y, warmup: int, repeats: int, modes=("model",)) -> dict:
    """{"eager", mode...}: median seconds per step, and {"compile_s": {mode: the first step}}."""
    steps, compile_s = {"eager": training_step(eager, x, y)}, {}
    for mode in modes:
        twin = copy.deepcopy(eager)
        steps[mode] = training_step(compile_for_training(twin, twin, mode), x, y)
        t0 = time.perf_counter()
        steps[mode]()  # compiles forward and backward
        compile_s[mode] = time.perf_counter() - t0
    out = time_interleaved(steps, warmup, repeats, "cpu")
    return {**out, "compile_s": compile_s}


def write_csv(path: Path, command: str, args, lines: list[list[str]]) -> None:
    """The table so far as CSV: model, eager_s_per_step, then per mode <mode>_s_per_step,
    <mode>_speedup, <mode>_compile_s; after a '#' line naming the command, the date and setting."""
    cols = ("s_per_step", "speedup", "compile_s")
    head = ["model", "eager_s_per_step"] + [f"{m}_{c}" for m in args.modes for c in cols]
    setting = f"size {args.size}, batch {args.batch}, fp32, cpu ({torch.get_num_threads()} threads)"
    write_measurements(path, command, head, lines, note=setting)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="B")
    p.add_argument("--rows", nargs="+", default=list(ROWS), help="classifier rows (supervised step)")
    p.add_argument("--mae", nargs="*", default=["f"], help="rows timed as sparse MAE steps (none: --mae)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["model"], choices=("model", "blocks"),
                   help="the whole model (runtime.compile=true) and/or each block (=blocks)")  # fmt: skip
    p.add_argument("--warm-cache", action="store_true",
                   help="reuse inductor code cached on disk by an earlier run (default: cold)")  # fmt: skip
    p.add_argument("--csv", metavar="PATH", help="also write the table to this CSV, row by row "
                   "(docs/scale.md shows analysis/figures/bench/compile.csv)")  # fmt: skip
    args = p.parse_args(argv)
    command = " ".join(["python -m analysis.bench_compile", *(sys.argv[1:] if argv is None else argv)])
    # A cold compile is what a fresh node pays; the on-disk cache would hide it after a first run.
    torch._inductor.config.force_disable_caches = not args.warm_cache
    torch.manual_seed(0)
    print(f"# size {args.size}, batch {args.batch}, fp32, cpu ({torch.get_num_threads()} threads)")
    cols = ("s/step", "speedup", "compile s")
    head = ["model", "eager s/step"] + [f"{m}: {h}" for m in args.modes for h in cols]
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    jobs = [(r, False) for r in args.rows] + [(r, True) for r in args.mae]
    lines = []
    for row, mae in jobs:
        torch._dynamo.reset()
        if mae:
            model = build_mae({"size": args.size, "step": row}, {}).train()
            y = None
        else:
            model = models.build(args.size, step=row, num_classes=1000).train()
            y = torch.randint(0, 1000, (args.batch,))
        enc = getattr(model, "encoder", model)
        x = torch.randn(args.batch, enc.cfg.in_chans, *enc.cfg.input_size)
        t = compare(model, x, y, args.warmup, args.repeats, args.modes)
        cells = [f"MAE {row}" if mae else row, f"{t['eager']:.2f}"]
        for m in args.modes:
            cells += [f"{t[m]:.2f}", f"{t['eager'] / t[m]:.2f}x", f"{t['compile_s'][m]:.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
        if args.csv:
            lines.append(cells)
            write_csv(Path(args.csv), command, args, lines)
        del model


if __name__ == "__main__":
    main()
