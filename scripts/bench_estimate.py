"""How good is ablate.py's time estimate? For each preset and row: the estimate --dry-run prints
from MACs alone (a fresh cache), then a rehearsal (--rehearse), the estimate from its measured step,
and the run's measured training time (metrics.json train_time_s: every phase's steps and
evaluations). Prints estimate / measured for both sources. Everything goes through ablate.py as a
user types it, in a throwaway folder; nothing here is a GPU number.

    python scripts/bench_estimate.py                      # tiny and cpu, row f (MAE) and mvitv2 (supervised)
    python scripts/bench_estimate.py --presets tiny --rows f
    python scripts/bench_estimate.py --rows f --csv analysis/figures/bench/time_estimate.csv

--csv PATH appends the lines to PATH (a CSV headed by the command and date when it is new), so
measurements under different loads sit side by side: docs/scale.md's table is that file.
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
sys.path.insert(0, str(REPO))

from ablations.store.measurements import write_measurements  # noqa: E402

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


def measure(preset: str, row: str, env: dict, tmp: Path) -> dict:
    """One line of the table: the run's measured train time (s), both estimates (estimate, low,
    high, source) and the load average (1 min) before and after."""
    load = os.getloadavg()[0]
    sel = ["--step", row, "--preset", preset]
    macs = estimate(sel, env)
    ablate([*sel, "--rehearse"], env)
    rehearsed = estimate(sel, env)
    runs = tmp / "runs"
    ablate([*sel, "--runs-dir", str(runs), "--quiet"], env)
    metrics = next(runs.glob(f"*/{row}/*/{preset}/seed0/metrics.json"))
    measured = json.loads(metrics.read_text())["train_time_s"]
    loads = sorted([load, os.getloadavg()[0]])
    return {"preset": preset, "row": row, "measured": measured, "macs": macs, "rehearsed": rehearsed,
            "load": f"{loads[0]:.1f}-{loads[1]:.1f}"}  # fmt: skip


CSV_COLUMNS = ["preset", "row", "load_average", "measured_s", "macs_estimate_s", "macs_ratio",
               "rehearsal_estimate_s", "rehearsal_ratio"]  # fmt: skip


def csv_line(r: dict) -> list:
    """CSV_COLUMNS of one measure() record: estimates as 'estimate (low-high)', ratio = estimate /
    measured."""
    (macs, ml, mh, _), (reh, rl, rh, _), measured = r["macs"], r["rehearsed"], r["measured"]
    return [r["preset"], r["row"], r["load"], f"{measured:.1f}", f"{macs:.1f} ({ml:.1f}-{mh:.1f})",
            f"{macs / measured:.2f}", f"{reh:.1f} ({rl:.1f}-{rh:.1f})", f"{reh / measured:.2f}"]  # fmt: skip


def write_csv(path: Path, records: list[dict], command: str) -> None:
    """Appends the records to `path`, a CSV headed by the command and date (new when missing)."""
    lines = [csv_line(r) for r in records]
    write_measurements(path, command, CSV_COLUMNS, lines, note="ratio = estimate / measured", append=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    ap.add_argument("--rows", nargs="+", default=["f", "mvitv2"])
    ap.add_argument("--csv", metavar="PATH", help="append the lines to this CSV (docs/scale.md shows "
                    "analysis/figures/bench/time_estimate.csv)")  # fmt: skip
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        env = {**os.environ, "HIERA_CACHE": str(Path(tmp) / "cache")}
        for preset in args.presets:
            for row in args.rows:
                r = measure(preset, row, env, Path(tmp))
                rows.append(r)
                measured, macs, rehearsed = r["measured"], r["macs"], r["rehearsed"]
                print(f"{preset} {row}: measured {measured:.1f} s; MACs estimate {macs[0]:.1f} s "
                      f"({macs[0] / measured:.2f}x); rehearsal estimate {rehearsed[0]:.1f} s "
                      f"({rehearsed[0] / measured:.2f}x)", flush=True)  # fmt: skip
    print("\n| preset | row | measured train time (s) | MACs estimate (range) | ratio "
          "| rehearsal estimate (range) | ratio |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        line = csv_line(r)
        print(f"| {line[0]} | {line[1]} | {line[3]} | {line[4]} | {line[5]} | {line[6]} | {line[7]} |")
    print(f"\nload average while measuring: {os.getloadavg()}")
    if args.csv:
        given = argv if argv is not None else sys.argv[1:]
        write_csv(Path(args.csv), rows, " ".join(["python scripts/bench_estimate.py", *given]))
        print(f"written to {args.csv}")


if __name__ == "__main__":
    main()
