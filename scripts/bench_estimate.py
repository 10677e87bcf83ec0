"""How good is ablate.py's time estimate? For each preset and row: the estimate --dry-run prints
from MACs alone (a fresh cache), then a rehearsal (--rehearse), the estimate from its measured step,
and the run's measured training time (metrics.json train_time_s: every phase's steps and
evaluations). Prints estimate / measured for both sources. Everything goes through ablate.py as a
user types it, in a throwaway folder; nothing here is a GPU number.

    python scripts/bench_estimate.py                      # tiny and cpu, row f (MAE) and mvitv2 (supervised)
    python scripts/bench_estimate.py --presets tiny --rows f
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DUR = r"(\S+(?: days| s)?)"
TIME = re.compile(rf"time: ~{DUR} \({DUR} to {DUR}\).*?source: (.*?)(?:;|$)", re.M)


def seconds(text: str) -> float:
    if text.endswith(" s"):
        return float(text[:-2])
    if text.endswith("days"):
        return float(text.split()[0]) * 86400
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def ablate(args: list[str], env: dict) -> str:
    cmd = [sys.executable, "ablate.py", *args]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"ablate.py {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def estimate(selection: list[str], env: dict) -> tuple[float, float, float, str]:
    out = ablate([*selection, "--dry-run"], env)
    m = TIME.search(out)
    if m is None:
        raise SystemExit(f"no time estimate in ablate.py's --dry-run output:\n{out[-3000:]}")
    return seconds(m[1]), seconds(m[2]), seconds(m[3]), m[4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    ap.add_argument("--rows", nargs="+", default=["f", "mvitv2"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        env = {**os.environ, "HIERA_CACHE": str(Path(tmp) / "cache")}
        for preset in args.presets:
            for row in args.rows:
                sel = ["--step", row, "--preset", preset]
                macs = estimate(sel, env)
                ablate([*sel, "--rehearse"], env)
                rehearsed = estimate(sel, env)
                runs = Path(tmp) / "runs"
                ablate([*sel, "--runs-dir", str(runs), "--quiet"], env)
                metrics = next(runs.glob(f"*/{row}/*/{preset}/seed0/metrics.json"))
                measured = json.loads(metrics.read_text())["train_time_s"]
                rows.append((preset, row, measured, macs, rehearsed))
                print(f"{preset} {row}: measured {measured:.1f} s; MACs estimate {macs[0]:.1f} s "
                      f"({macs[0] / measured:.2f}x); rehearsal estimate {rehearsed[0]:.1f} s "
                      f"({rehearsed[0] / measured:.2f}x)", flush=True)  # fmt: skip
    print("\n| preset | row | measured train time (s) | MACs estimate (range) | ratio "
          "| rehearsal estimate (range) | ratio |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for preset, row, measured, macs, reh in rows:
        print(f"| {preset} | {row} | {measured:.1f} | {macs[0]:.1f} ({macs[1]:.1f}-{macs[2]:.1f}) | "
              f"{macs[0] / measured:.2f} | {reh[0]:.1f} ({reh[1]:.1f}-{reh[2]:.1f}) | "
              f"{reh[0] / measured:.2f} |")  # fmt: skip
    print(f"\nload average while measuring: {os.getloadavg()}")


if __name__ == "__main__":
    main()
