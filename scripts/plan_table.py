"""The memory plans of the paper presets, as docs/scale.md shows them: per preset, Table 1 rows
mvitv2, b and f, every phase, planned for 8 devices of 80 and of 40 GiB (the run's amp; under
bf16/fp16 the activations count x memory_plan.CUDA_AUTOCAST_MARGIN), as `ablate.py --table 1
--preset <p> --plan [--device-mem 40] --devices 8` plans them. A cell is per device x
accumulation, checkpointed blocks (when any), and the peak in GiB; saved / sample is the
activations one more sample adds, as measured (before the margin). Activations are measured on
fake tensors and cached like --plan's (HIERA_CACHE): a cold run takes minutes per preset.

    python scripts/plan_table.py --csv analysis/figures/bench/memory_plan.csv
    python scripts/plan_table.py --presets tiny --rows f       # seconds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ablations.store.measurements import write_measurements  # noqa: E402
from ablations.study import config as C  # noqa: E402
from ablations.train import memory_plan as M  # noqa: E402

COLUMNS = ["preset", "run", "phase", "global_batch", "saved_per_sample_gib", "plan_80_gib", "plan_40_gib"]
PHASES = {"pretrain": "MAE pretrain", "finetune": "finetune", "supervised": "supervised"}


def cell(plan: M.PhasePlan) -> str:
    """'256 x 2, ckpt 6/24, 43.6': per device x accumulation, checkpointed blocks, peak GiB."""
    ckpt = f", ckpt {plan.grad_ckpt}/{plan.blocks}" if plan.grad_ckpt else ""
    return f"{plan.per_device} x {plan.accum}{ckpt}, {plan.memory['total'] / M.GIB:.1f}"


def plan_lines(preset: str, rows: list[str], devices: int = 8) -> list[list[str]]:
    """COLUMNS per run and phase of Table 1's `rows` on `preset` (its first modality)."""
    lines = []
    for row in rows:
        (run,) = C.resolve(C.Selection(table="table1", step=row, preset=preset))
        cfg = run.config
        plans = {mem: M.plan_run(cfg, mem, devices) for mem in (80, 40)}
        for phase, plan in plans[80].items():
            acts = M.activations(cfg, phase)
            per_sample = (acts.outside[1] + sum(b[1] for b in acts.blocks)) / M.GIB
            lines.append([preset, row, PHASES[phase], plan.global_batch, f"{per_sample:.3f}", cell(plan),
                          cell(plans[40][phase])])  # fmt: skip
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["in1k-b", "in1k-l", "k400-b", "k400-l"])
    ap.add_argument("--rows", nargs="+", default=["mvitv2", "b", "f"])
    ap.add_argument("--csv", metavar="PATH", help="also write the table to this CSV (docs/scale.md shows "
                    "analysis/figures/bench/memory_plan.csv)")  # fmt: skip
    args = ap.parse_args(argv)
    command = " ".join(["python scripts/plan_table.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        lines = [line for preset in args.presets for line in plan_lines(preset, args.rows)]
    except (C.ConfigError, M.PlanError) as e:
        print(f"scripts/plan_table.py: error: {e}", file=sys.stderr)
        return 2
    print("| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|")
    for line in lines:
        print("| " + " | ".join(map(str, line)) + " |")
    if args.csv:
        write_measurements(args.csv, command, COLUMNS, lines, note="8 devices, GiB per device")
        print(f"written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
