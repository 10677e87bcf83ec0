"""python -m analysis [--runs-dir runs]: regenerate runs/report/ from the run folders."""

import argparse
import sys

from analysis.report import write_report
from analysis.trends import verdicts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.runs_dir)
    except OSError as e:  # a missing runs folder, a read-only or full disk: one line, no traceback
        print(f"python -m analysis: error: {e}", file=sys.stderr)
        return 2
    print(f"report written to {out}")
    for path in sorted(out.glob("*/trends.md")):
        print(f"\n{path}:\n{verdicts(path.read_text())}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
