"""The pages cannot drift: every run-derived number between markers is what python -m analysis.docs
writes from the committed results files, and every link to a page section, in the pages and in
the code's help texts, points at a heading that exists."""

import re
import shutil
from pathlib import Path

import pytest

from ablations.study import config as C
from analysis import docs as D
from analysis.report import write_report
from tests.test_analysis import fake_run

ROOT = D.ROOT
# Text a user reads besides the pages: help strings, presets and tables, the CI script.
TEXT_FILES = ["README.md", "docs/*.md", "analysis/figures/README.md", "ablate.py", "ablations/**/*.py",
              "analysis/**/*.py", "ablations/**/*.yaml", ".ci/run"]  # fmt: skip
LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s#]*)(?:#([^)\s]+))?\)")
DOC_ANCHOR = re.compile(r"\b((?:docs/)?[\w-]+\.md)#([\w-]+)")
README_SECTION = re.compile(r"README(?::|,)?\s+\"?([A-Z][^\"\n);]*?)\"?[);\n]")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    out, seen = set(), {}
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def text_files() -> list[Path]:
    return sorted({p for pattern in TEXT_FILES for p in ROOT.glob(pattern) if ".venv" not in p.parts})


def test_every_page_agrees_with_the_committed_results_files():
    assert D.stale() == [], "run python -m analysis.docs"
    assert D.main(["--check"]) == 0


def test_no_marker_starts_a_line_inside_a_paragraph():
    """A line starting with <!-- would end the paragraph (Markdown reads an HTML block there):
    inline markers sit mid-line, block markers on lines of their own."""
    bad = [
        f"{page.relative_to(ROOT)}:{i}"
        for page in D.pages()
        for i, line in enumerate(page.read_text().splitlines(), 1)
        if line.lstrip().startswith("<!-- results:") and not line.endswith("-->")
    ]
    assert not bad


def test_a_number_edited_by_hand_is_stale(tmp_path):
    for page in D.pages():
        dst = tmp_path / page.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, dst)
    readme = tmp_path / "README.md"
    text = readme.read_text()
    marked = re.search(r"<!-- results: cpu seeds table1 f image mae -->([^<]*)<!-- /results -->", text)
    assert marked and re.fullmatch(r"[\d.]+( / [\d.]+)+", marked[1])
    readme.write_text(text.replace(marked[0], marked[0].replace(marked[1], "48.0 / 45.8 / 42.4")))
    assert D.stale(tmp_path) == ["README.md: cpu seeds table1 f image mae"]


def test_a_bad_marker_is_one_clear_error():
    with pytest.raises(D.DocsError, match="unknown view 'nosuch'.*Valid: summary"):
        D.generate("<!-- results: cpu nosuch -->1<!-- /results -->")
    with pytest.raises(D.DocsError, match="no results folder"):
        D.generate("<!-- results: nopreset summary image -->1<!-- /results -->")
    with pytest.raises(D.DocsError, match="has no <!-- /results -->"):
        D.generate("<!-- results: cpu summary image -->")
    with pytest.raises(D.DocsError, match="has no run table1/z/image/mae"):
        D.generate("<!-- results: cpu seeds table1 z image mae --><!-- /results -->")


def test_the_command_names_a_missing_report_and_redraws_figures(tmp_path, capsys):
    assert D.main(["--publish", str(tmp_path / "nope")]) == 2
    assert "is not a report folder" in capsys.readouterr().err
    figures = tmp_path / "figures"
    shutil.copytree(D.FIGURES / "laptop", figures / "laptop")
    drawn = D.redraw(figures)
    assert sorted(p.name for p in drawn) == sorted(p.name for p in (D.FIGURES / "laptop").glob("*.png"))
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in drawn)


def test_a_transcribed_results_file_says_so_and_what_overwrites_it():
    for csv in sorted(D.FIGURES.glob("*/*.csv")):
        text = csv.read_text()
        if text.startswith("# Written by: python -m "):  # a measurement file names its command
            continue
        if text.startswith("#"):  # a report's own CSV has no header comment
            assert "Transcribed from the last published report" in text and "--publish" in text, csv


def test_a_report_is_published_and_rendered(tmp_path, monkeypatch):
    """The report writes runs.csv beside its tables; --publish copies them over a results folder,
    and the views render from them (a fresh report, not the transcribed files)."""
    for name in ("table1_accuracy", "table1_speed", "fig8", "acc_vs_speed", "differences"):  # tables only
        monkeypatch.setattr(f"analysis.plots.{name}", lambda *a, **k: [])
    top1 = {("table1", "f"): [40.0, 44.0], ("table1", "mvitv2"): [60.0, 62.0], ("fig8", "f"): [50.0, 52.0]}
    for (table, step), accs in top1.items():
        for run in C.resolve(C.Selection(table=table, step=step, seeds=2)):
            fake_run(tmp_path / "runs", run, accs[run.config["seed"]])
    write_report(tmp_path / "runs", measure_speed=False)
    runs = (tmp_path / "runs/report/cpu/runs.csv").read_text().splitlines()
    assert runs[0].startswith("table,entry,modality,mode,seed,top1") and len(runs) == 7
    figures = tmp_path / "figures"
    (figures / "cpu").mkdir(parents=True)
    assert D.publish(tmp_path / "runs/report", figures)
    assert D.render("cpu seeds table1 f image mae", figures) == "40.0 / 44.0"
    table = D.render("cpu summary image", figures)
    assert "| f | 42.0 ± 2.8 (40.0, 44.0) |" in table and "| 51.0 ± 1.4 (50.0, 52.0) |" in table
    assert "| mvitv2 | – | 61.0 ± 1.4 (60.0, 62.0) |" in table


def test_every_link_to_a_page_section_exists():
    bad = []
    for path in text_files():
        text = path.read_text()
        refs = [(m[1], m[2]) for m in LINK.finditer(text)] if path.suffix == ".md" else []
        refs += [(m[1], m[2]) for m in DOC_ANCHOR.finditer(text)]
        for target, anchor in refs:
            if not target and anchor:
                page = path
            else:
                page = (path.parent / target) if path.suffix == ".md" else ROOT / target
                if not page.exists() and not target.startswith("docs/"):
                    page = ROOT / "docs" / target  # a .py/.yaml text naming a docs page by its name
            if not page.exists():
                bad.append(f"{path.relative_to(ROOT)}: {target} does not exist")
            elif anchor and page.suffix == ".md" and anchor not in anchors(page):
                bad.append(f"{path.relative_to(ROOT)}: {target}#{anchor}: no such section")
    assert not bad, "\n".join(bad)


def test_every_readme_section_named_in_the_text_exists():
    lines = (ROOT / "README.md").read_text().splitlines()
    sections = {ln.lstrip("#").strip() for ln in lines if ln.startswith("#")}
    bad = [
        f"{path.relative_to(ROOT)}: README section {m[1]!r}"
        for path in text_files()
        for m in README_SECTION.finditer(path.read_text())
        if m[1].strip() not in sections
    ]
    assert not bad, "\n".join(bad)
    assert README_SECTION.search("(README: Running on GPUs and clusters)")  # the pattern finds them


def test_the_anchor_rules():
    assert slug("Table 1 and Fig. 8, cpu preset, images") == "table-1-and-fig-8-cpu-preset-images"
    assert slug("The paper's numbers") == "the-papers-numbers" and slug("torch.compile") == "torchcompile"


def test_a_measurement_file_renders_as_a_table_and_as_one_cell(tmp_path):
    folder = tmp_path / "cpu"
    folder.mkdir()
    (folder / "probe.csv").write_text("# written by a script\npoint,probe,spread\nhog b,19.2,0.074\nbase,14.0,\n")
    page = "<!-- results: cpu csv probe -->x<!-- /results --> <!-- results: cpu cell probe point=hog_b probe -->0<!-- /results -->"
    out = D.generate(page, tmp_path)
    assert "| hog b | 19.2 | 0.074 |" in out and "| base | 14.0 | – |" in out
    assert "-->19.2<!--" in out
    # a column name with a space is written with '_' (a marker's arguments are split on spaces)
    (folder / "probe.csv").write_text("# by a script\npoint,probe top-1\nhog b,19.2\n")
    cell = "<!-- results: cpu cell probe point=hog_b probe_top-1 -->0<!-- /results -->"
    assert "-->19.2<!--" in D.generate(cell, tmp_path)
    with pytest.raises(D.DocsError, match="0 lines match point=nope"):
        D.generate("<!-- results: cpu cell probe point=nope probe -->0<!-- /results -->", tmp_path)
