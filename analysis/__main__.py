"""python -m analysis [--runs-dir runs]: regenerate runs/report/ from the run folders."""

import argparse

from analysis.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    args = parser.parse_args()
    out = write_report(args.runs_dir)
    print(f"report written to {out}")


if __name__ == "__main__":
    main()
