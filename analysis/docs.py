"""python -m analysis.docs [--check] [--publish REPORT] [--figures]: every number a run gave that
README.md and docs/ show, written into the pages from the committed results files.

The results files are the report's CSVs of the published runs, one folder per preset beside the
figures the pages show: analysis/figures/<preset>/runs.csv (one line per run), table1.csv,
fig8.csv, table3.csv, <table>.csv, *_differences.csv, *_interactions.csv, trends.csv (the
paper's trends: verdicts and intervals) and chance.csv (each row's top-1 interval against
chance); analysis/report.py writes them all into runs/report/<preset>/. Measurements that are
not a report's (benchmarks, recipe searches, diagnostics) are CSVs in the preset's folder or in
analysis/figures/bench/, written by the command their first '#' line names. A page holds each
generated part between markers

    <!-- results: cpu summary image -->...<!-- /results -->

naming the preset folder, a view (analysis/doc_views.py) and its arguments; this command rewrites
what is between them, `--check` exits 1 naming each stale part (tests/test_docs.py runs it), and
`--publish runs/report` first copies a rerun's results files and published figures over the
committed ones (`--publish runs/report/<preset> --into FOLDER`: one preset's report into a folder
of its own, e.g. laptop-video). `--figures` redraws, from the committed results files, the published figures
that need no more than they hold (Table 1 accuracy, speed and differences, Fig. 8, the
interactions).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ablations.study.config import load_table
from analysis import interaction_plot, plots
from analysis.doc_views import VIEWS, DocsError, Results

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "analysis" / "figures"
PAGES = ("README.md", "docs/*.md")
MARKER = re.compile(r"<!-- results: (?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /results -->", re.S)


def pages(root: Path = ROOT) -> list[Path]:
    return [p for pattern in PAGES for p in sorted(root.glob(pattern))]


# ----------------------------------------------------------------------------- pages


def render(spec: str, figures: Path = FIGURES) -> str:
    preset, view, *args = spec.split()
    if view not in VIEWS:
        raise DocsError(f"unknown view {view!r} in <!-- results: {spec} -->. Valid: {', '.join(VIEWS)}")
    if not (figures / preset).is_dir():
        raise DocsError(f"<!-- results: {spec} -->: no results folder {figures / preset}")
    try:
        return VIEWS[view](Results(figures / preset), *args)
    except (KeyError, TypeError, IndexError) as e:
        raise DocsError(f"<!-- results: {spec} -->: {type(e).__name__}: {e}") from None


def generate(text: str, figures: Path = FIGURES) -> str:
    """The page with every marked part rewritten from the results files."""
    cache: dict[str, str] = {}

    def fill(m: re.Match) -> str:
        spec = " ".join(m["spec"].split())
        if spec not in cache:
            cache[spec] = render(spec, figures)
        body = cache[spec]
        # a block ends with a blank line, so that the closing marker never reads as a table row
        return f"<!-- results: {spec} -->{body}{chr(10) if body.startswith(chr(10)) else ''}<!-- /results -->"

    if text.count("<!-- results:") != text.count("<!-- /results -->"):
        raise DocsError("a <!-- results: ... --> marker has no <!-- /results --> (or the other way round)")
    return MARKER.sub(fill, text)


def stale(root: Path = ROOT, figures: Path = FIGURES) -> list[str]:
    """'<page>: <spec>' for every marked part that differs from its results files."""
    out = []
    for page in pages(root):
        text = page.read_text()
        new = generate(text, figures)
        old_parts = {m["spec"]: m.group(0) for m in MARKER.finditer(text)}
        for m in MARKER.finditer(new):
            if old_parts.get(m["spec"]) != m.group(0):
                out.append(f"{page.relative_to(root)}: {m['spec']}")
    return out


# The figures `--figures` can redraw from results files alone: what a new results folder starts with
REDRAWN = ("table1_accuracy.png", "table1_speed.png", "table1_differences.png", "fig8_mae_vs_supervised.png")


def publish(report: Path, figures: Path = FIGURES) -> list[Path]:
    """Copies a report's results files (every CSV) and the figures already published, for each
    preset folder of `figures` the report has; returns the files written."""
    written = []
    for folder in sorted(p for p in figures.iterdir() if p.is_dir()):
        if (Path(report) / folder.name).is_dir():
            written += _copy(Path(report) / folder.name, folder)
    return written


def publish_into(src: Path, name: str, figures: Path = FIGURES) -> list[Path]:
    """Copies one preset's report folder (runs/report/<preset>) into the results folder `name`,
    made if new: a second folder for a preset whose other runs are published already (the laptop
    preset's video runs beside its image ones). A new folder gets the figures `--figures` redraws."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise DocsError(f"--into {name!r}: give a folder name (letters, digits, . _ -), not a path")
    if not any(Path(src).glob("*.csv")):
        raise DocsError(
            f"{src} holds no results files: give a preset's report folder, e.g. runs/report/laptop"
        )
    folder = figures / name
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for png in REDRAWN:
            if (Path(src) / png).exists():
                shutil.copyfile(Path(src) / png, folder / png)
    return _copy(Path(src), folder)


def _copy(src: Path, folder: Path) -> list[Path]:
    names = [p.name for p in src.glob("*.csv")] + [p.name for p in folder.glob("*.png")]
    written = []
    for name in names:
        if (src / name).exists():
            shutil.copyfile(src / name, folder / name)
            written.append(folder / name)
    return written


def redraw(figures: Path = FIGURES) -> list[Path]:
    """The published figures drawn from results files alone, redrawn from the committed ones."""
    written = []
    for folder in sorted(p for p in figures.iterdir() if p.is_dir()):
        res = Results(folder)
        with tempfile.TemporaryDirectory() as tmp:
            out, title = Path(tmp), f"({folder.name})"  # the report's titles
            if res.has("table1") and (folder / "table1_accuracy.png").exists():
                plots.table1_accuracy(res.frame("table1"), out, f"Table 1 accuracy per row {title}")
            if res.has("table1") and (folder / "table1_speed.png").exists():
                plots.table1_speed(res.frame("table1"), out, f"Table 1 speed per row {title}")
            if res.has("fig8") and (folder / "fig8_mae_vs_supervised.png").exists():
                plots.fig8(res.frame("fig8"), out, f"Fig. 8: MAE vs supervised {title}")
            if res.has("table1_differences") and (folder / "table1_differences.png").exists():
                frame = res.frame("table1_differences")
                plots.differences(
                    frame, out, "table1_differences", f"Table 1: each row minus the one before {title}"
                )
            for table in ("loo", "one"):
                if res.has(f"{table}_interactions") and (folder / f"{table}_interactions.png").exists():
                    spec_title = load_table(table).get("title", table)
                    interaction_plot.interactions(
                        res.frame(f"{table}_interactions"),
                        out,
                        f"{table}_interactions",
                        f"{spec_title} {title}",
                    )
            for png in sorted(out.glob("*.png")):
                shutil.copyfile(png, folder / png.name)
                written.append(folder / png.name)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.docs", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale part")
    p.add_argument(
        "--publish",
        metavar="REPORT",
        help="first copy a report's results files and figures "
        "(e.g. runs/report) over analysis/figures/<preset>/",
    )
    p.add_argument(
        "--into",
        metavar="FOLDER",
        help="with --publish runs/report/<preset>: copy that one preset's report into "
        "analysis/figures/FOLDER instead (made if new), e.g. a preset's video runs beside its images",
    )
    p.add_argument("--figures", action="store_true", help="redraw the figures the results files hold")
    args = p.parse_args(argv)
    try:
        if args.publish:
            if not Path(args.publish).is_dir():
                raise DocsError(
                    f"{args.publish} is not a report folder (python -m analysis writes runs/report)"
                )
            if args.into:
                done = publish_into(Path(args.publish), args.into)
                print(f"published {len(done)} files into {(FIGURES / args.into).relative_to(ROOT)}/")
            else:
                print(f"published {len(publish(Path(args.publish)))} files into {FIGURES.relative_to(ROOT)}/")
        elif args.into:
            raise DocsError("--into names where --publish copies to: add --publish runs/report/<preset>")
        if args.figures:
            print(f"redrew {len(redraw())} figures")
        if args.check:
            bad = stale()
            for line in bad:
                print(f"stale: {line} (run python -m analysis.docs)", file=sys.stderr)
            return 1 if bad else 0
        changed = []
        for page in pages():
            text = page.read_text()
            new = generate(text)
            if new != text:
                page.write_text(new)
                changed.append(str(page.relative_to(ROOT)))
        print(f"rewrote {', '.join(changed)}" if changed else "every page is up to date")
    except DocsError as e:
        print(f"python -m analysis.docs: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
