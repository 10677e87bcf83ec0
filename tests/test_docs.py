"""The pages cannot drift: every run-derived number between markers is what python -m analysis.docs
writes from the committed results files, and every link to a page section, in the pages and in
the code's help texts, points at a heading that exists."""

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ablations.study import config as C
from analysis import docs as D
from analysis.report import write_report
from tests.test_analysis import fake_predictions, fake_run
from tests.test_trends_table3 import BASE, fake_rows, shifted

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


MEASURED_BY = re.compile(r"python (?:-m ([\w.]+)|(scripts/\w+\.py)) [^\n]*--csv (analysis/figures/\S+\.csv)")


def test_a_transcribed_results_file_says_so_and_what_overwrites_it():
    """A report's own CSV has no header; a measurement's names the command that wrote it, and a
    transcribed one says so and names what overwrites it: --publish, or a script's --csv that
    exists and writes this very file."""
    for csv in sorted(D.FIGURES.glob("*/*.csv")):
        text = csv.read_text()
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        if not header:
            continue
        if header.startswith("# written by: "):
            assert "--csv" in header, csv
            continue
        assert "Transcribed from" in header, csv
        if "--publish" in header:
            continue
        m = MEASURED_BY.search(header.replace("\n# ", " "))
        named = Path(m[3]) if m else Path("")  # this file, or the one whose <name>_<part>.csv it is
        here = csv.relative_to(ROOT)
        assert named == here or (named.parent == here.parent and here.stem.startswith(named.stem + "_")), csv
        script = ROOT / (m[2] or m[1].replace(".", "/") + ".py")
        assert "--csv" in script.read_text(), f"{csv}: {script} has no --csv"


def test_a_report_is_published_and_rendered(tmp_path, paper_figures_off):
    """The report writes runs.csv beside its tables; --publish copies them over a results folder,
    and the views render from them (a fresh report, not the transcribed files)."""
    top1 = {("table1", "f"): [40.0, 44.0], ("table1", "mvitv2"): [60.0, 62.0], ("fig8", "f"): [50.0, 52.0]}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    for (table, step), accs in top1.items():
        for run in C.resolve(C.Selection(table=table, step=step, seeds=2)):
            fake_run(tmp_path / "runs", run, accs[run.config["seed"]])
            fake_predictions(tmp_path / "runs", run, rng.random(500) < accs[run.config["seed"]] / 100, labels)
    write_report(tmp_path / "runs", measure_speed=False)
    runs = (tmp_path / "runs/report/cpu/runs.csv").read_text().splitlines()
    assert runs[0].startswith("table,entry,modality,mode,seed,top1") and len(runs) == 7
    assert runs[0].endswith(",wall_time_s,build")
    figures = tmp_path / "figures"
    (figures / "cpu").mkdir(parents=True)
    assert D.publish(tmp_path / "runs/report", figures)
    assert D.render("cpu seeds table1 f image mae", figures) == "40.0 / 44.0"
    assert D.render("cpu times table1 image mae", figures) == "12-12 s (median 12 s, 2 runs)"
    chance = D.render("cpu chance image", figures)  # the report's chance.csv: every row learned
    assert "| f | 4" in chance and "at chance" not in chance and "| mvitv2 | – | 6" in chance
    table = D.render("cpu summary image", figures)
    assert "| f | 42.0 ± 2.8 (40.0, 44.0) |" in table and "| 51.0 ± 1.4 (50.0, 52.0) |" in table
    assert "| mvitv2 | – | 61.0 ± 1.4 (60.0, 62.0) |" in table
    # Fig. 8's one comparison with its Holm verdict read back from CSV (a 'False' string is no yes)
    diff = D.render("cpu diff fig8 f:_MAE_-_supervised image", figures)
    resolution = D.render("cpu resolution fig8 image", figures)
    assert diff.startswith("-") and diff in resolution and "(m=1)" in resolution, (diff, resolution)
    assert D.render("cpu verdict fig8 f:_MAE_-_supervised image", figures) in (
        "not distinguishable",
        "distinguishable after Holm (family of 1)",
    )

    # one preset's report into a folder of its own (made, with the figures --figures redraws),
    # leaving the preset's own folder as it was; a path or an empty folder is refused
    for png in ("table1_accuracy.png", "reconstructions.png"):
        (tmp_path / "runs/report/cpu" / png).write_bytes(b"png")
    before = (figures / "cpu/runs.csv").read_text()
    done = D.publish_into(tmp_path / "runs/report/cpu", "cpu-video", figures)
    assert figures / "cpu-video/runs.csv" in done and (figures / "cpu-video/table1_accuracy.png").exists()
    assert D.render("cpu-video seeds table1 f image mae", figures) == "40.0 / 44.0"
    assert (figures / "cpu/runs.csv").read_text() == before
    assert not (figures / "cpu-video/reconstructions.png").exists()
    for bad, says in (("../x", "not a path"), ("cpu-video", "holds no results files")):
        with pytest.raises(D.DocsError, match=says):
            D.publish_into(tmp_path / ("runs/report/cpu" if bad == "../x" else "runs"), bad, figures)
    assert D.main(["--into", "x"]) == 2


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
    (folder / "probe.csv").write_text("# by a script\npoint,probe,spread\nhog b,19.2,0.074\nbase,14.0,\n")
    page = (
        "<!-- results: cpu csv probe -->x<!-- /results --> "
        "<!-- results: cpu cell probe point=hog_b probe -->0<!-- /results -->"
    )
    out = D.generate(page, tmp_path)
    assert "| hog b | 19.2 | 0.074 |" in out and "| base | 14.0 | – |" in out
    assert "-->19.2<!--" in out
    # a column name with a space is written with '_' (a marker's arguments are split on spaces)
    (folder / "probe.csv").write_text("# by a script\npoint,probe top-1\nhog b,19.2\n")
    cell = "<!-- results: cpu cell probe point=hog_b probe_top-1 -->0<!-- /results -->"
    assert "-->19.2<!--" in D.generate(cell, tmp_path)
    with pytest.raises(D.DocsError, match="0 lines match point=nope"):
        D.generate("<!-- results: cpu cell probe point=nope probe -->0<!-- /results -->", tmp_path)


def test_the_report_writes_the_trends_as_a_csv_the_pages_read(tmp_path, paper_figures_off):
    """trends.csv holds each trend's verdict and comparisons as trends.md states them; --publish
    copies it, the trend and trendverdict views render from it, and a page typed otherwise is stale."""
    fake_rows(tmp_path / "runs", dict.fromkeys("abcdef", shifted(10)), {"mvitv2": shifted(20), "f": BASE})
    report = write_report(tmp_path / "runs", measure_speed=False)
    text = (report / "cpu/trends.md").read_text()
    csv = (report / "cpu/trends.csv").read_text().splitlines()
    assert csv[0] == "trend,modality,verdict,comparison,diff,low,high,seeds,distinguishable,adjusted,p"
    assert len(csv) == 1 + 8  # image: six comparisons for (1), one each for (2) and (3); no video lines
    figures = tmp_path / "figures"
    (figures / "cpu").mkdir(parents=True)
    assert figures / "cpu/trends.csv" in D.publish(report, figures)
    drop = D.render("cpu trend image supervised_f_-_supervised_mvitv2", figures)
    assert drop.startswith("-20.0 [") and drop.endswith("(Holm: yes)") and drop in text
    assert D.render("cpu trend image MAE_f_-_MAE_a", figures) == "+0.0 [+0.0, +0.0] n.d."
    assert [D.render(f"cpu trendverdict image {n}", figures) for n in (1, 2, 3)] == ["holds"] * 3
    assert "**(2) supervised from scratch loses accuracy from mvitv2 to f: holds.**" in text
    with pytest.raises(D.DocsError, match="trends.csv has no video line"):
        D.render("cpu trendverdict video 1", figures)
    page = tmp_path / "README.md"
    page.write_text(f"(2) <!-- results: cpu trendverdict image 2 -->does not hold<!-- /results -->: {drop}\n")
    assert D.stale(tmp_path, figures) == ["README.md: cpu trendverdict image 2"]


def test_the_speed_figure_has_a_panel_only_for_the_modalities_timed(tmp_path, monkeypatch):
    """The cpu results time images only: --figures redraws table1_speed.png with one panel."""
    figures = tmp_path / "figures"
    (figures / "cpu").mkdir(parents=True)
    for name in ("table1.csv", "table1_speed.png"):  # the speed figure alone is redrawn
        shutil.copyfile(D.FIGURES / "cpu" / name, figures / "cpu" / name)
    titles, save = {}, D.plots.save
    monkeypatch.setattr(D.plots, "save", lambda fig, out, stem: titles.update(
        {stem: [ax.get_title() for ax in fig.axes if ax.get_title()]}) or save(fig, out, stem))  # fmt: skip
    assert D.redraw(figures) == [figures / "cpu/table1_speed.png"]
    assert titles["table1_speed"] == ["image"]
    both = D.Results(figures / "cpu").frame("table1").assign(video_speedup=1.0)
    D.plots.table1_speed(both, tmp_path, "t")
    assert titles["table1_speed"] == ["image", "video"]


def script(path: str):
    """A script of scripts/ as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_estimate_appends_the_lines_the_time_estimate_table_shows(tmp_path, monkeypatch):
    bench = script("scripts/bench_estimate.py")
    fake = {"measured": 84.3, "macs": (113.8, 56.9, 227.5, "MACs"), "rehearsed": (114.5, 57.3, 229.1, "r")}
    monkeypatch.setattr(
        bench, "measure", lambda p, r, env, tmp: fake | {"preset": p, "row": r, "load": "1.4-1.6"}
    )
    out = tmp_path / "bench/time_estimate.csv"
    for _ in range(2):  # a second measurement adds its lines under the same header
        bench.main(["--presets", "cpu", "--rows", "f", "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python scripts/bench_estimate.py --presets cpu --rows f --csv")
    assert lines[1].split(",") == bench.CSV_COLUMNS and len(lines) == 4
    assert lines[2] == lines[3] == "cpu,f,1.4-1.6,84.3,113.8 (56.9-227.5),1.35,114.5 (57.3-229.1),1.36"
    page = "<!-- results: bench cell time_estimate preset=cpu macs_ratio -->0<!-- /results -->"
    with pytest.raises(D.DocsError, match="2 lines match"):
        D.generate(page, tmp_path)
    assert "| cpu | f | 1.4-1.6 | 84.3 | 113.8 (56.9-227.5) |" in D.render(
        "bench csv time_estimate", tmp_path
    )


def test_bench_compile_writes_the_table_the_compile_section_shows(tmp_path, monkeypatch):
    from analysis import bench_compile

    times = iter([(2.0, 2.5, 9.0), (1.0, 0.5, 30.0)])  # (eager, compiled, compile s) per row, faked

    def fake_compare(model, x, y, warmup, repeats, modes):
        eager, compiled, first = next(times)
        return {"eager": eager, "model": compiled, "compile_s": {"model": first}}

    monkeypatch.setattr(bench_compile, "compare", fake_compare)
    out = tmp_path / "bench/compile.csv"
    bench_compile.main(["--size", "cpu-xs", "--rows", "f", "--mae", "f", "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith(
        "# written by: python -m analysis.bench_compile --size cpu-xs --rows f --mae f"
    )
    assert "size cpu-xs, batch 2" in lines[0]
    assert lines[1:] == [
        "model,eager_s_per_step,model_s_per_step,model_speedup,model_compile_s",
        "f,2.00,2.50,0.80x,9",
        "MAE f,1.00,0.50,2.00x,30",
    ]
    assert D.render("bench range compile model_speedup", tmp_path) == "0.80-2.00x"
    assert D.render("bench range compile model_compile_s model!=MAE_f", tmp_path) == "9"
    assert D.render("bench cell compile model=MAE_f model_speedup", tmp_path) == "2.00x"
    with pytest.raises(D.DocsError, match="no column 'nosuch'"):
        D.render("bench cell compile nosuch=1 model_speedup", tmp_path)


def test_bench_video_writes_the_tables_the_video_loading_section_shows(tmp_path, monkeypatch):
    from analysis import bench_video as B

    rates = {
        "reference (decode from 0)": (1.0, 5.0),
        "ours (seek)": (2.0, 8.0),
        "ours + repeated 4": (3.0, 20.0),
    }
    monkeypatch.setattr(B, "write_kinetics_like", lambda root, videos, gop: None)
    monkeypatch.setattr(B, "bench", lambda root, rounds, repeated: rates)
    monkeypatch.setattr(B, "frames_decoded", lambda path, r: (173.0, 133.0 if r == 1 else 52.0))
    stages = dict.fromkeys(B.STAGES, 1.0) | {"other": 0.5, "total": 4.5}
    monkeypatch.setattr(B, "profile", lambda root, r: stages)
    out = tmp_path / "bench/video_loading.csv"
    B.main(["--gops", "250", "--profile", "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python -m analysis.bench_video --gops 250 --profile --csv")
    assert lines[1:] == [
        ",".join(B.SPEED_COLUMNS),
        "250,reference,173,1.00,1.00x,5.00,1.00x",
        '250,"ours, seek",133,2.00,2.00x,8.00,1.60x',
        '250,"ours, repeated 4",52,3.00,3.00x,20.00,4.00x',
    ]
    stage_lines = (tmp_path / "bench/video_loading_stages.csv").read_text().splitlines()
    assert stage_lines[2:] == ["250,1,1.0,1.0,1.0,1.0,0.5,4.5", "250,4,1.0,1.0,1.0,1.0,0.5,4.5"]
    assert (
        D.render("bench cell video_loading gop=250 loader=ours,_seek clips_per_cpu_s_ratio", tmp_path)
        == "1.60x"
    )
    monkeypatch.setattr(B, "write_video", lambda path, frames, gop: None)
    monkeypatch.setattr(B, "moving_texture", lambda *a: None)
    monkeypatch.setattr(B, "pink_noise", lambda *a: None)
    monkeypatch.setattr(
        B, "pixel_difference", lambda path: {"train crops": (3.284, 61.0), "eval views": (2.75, 40.0)}
    )
    B.main(["--pixels", "--csv", str(tmp_path / "bench/video_pixels.csv")])
    assert D.render("bench cell video_pixels content=1/f_noise train_mean", tmp_path) == "3.28"


def test_plan_table_writes_the_plans_the_memory_plan_section_shows(tmp_path, monkeypatch):
    plans = script("scripts/plan_table.py")
    acts = plans.M.Activations(
        params=1000, outside=(0.0, 2**27), blocks=((0.0, 2**27),) * 3, inputs=((0.0, 1.0),) * 3
    )
    monkeypatch.setattr(plans.M, "activations", lambda cfg, phase, *a, **k: acts)  # measured elsewhere
    out = tmp_path / "bench/memory_plan.csv"
    assert plans.main(["--presets", "tiny", "--rows", "f", "--csv", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python scripts/plan_table.py --presets tiny --rows f --csv")
    assert lines[1].split(",") == plans.COLUMNS
    assert [line.split(",")[:3] for line in lines[2:]] == [
        ["tiny", "f", "MAE pretrain"],
        ["tiny", "f", "finetune"],
    ]
    assert re.fullmatch(
        r"\d+ x \d+, [\d.]+", D.render("bench cell memory_plan phase=finetune plan_40_gib", tmp_path)
    )
    assert plans.main(["--presets", "nosuch"]) == 2


def test_models_summary_writes_the_sizes_the_params_table_shows(tmp_path):
    from models import summary

    (tmp_path / "bench").mkdir()
    out = tmp_path / "bench/model_sizes.csv"
    summary.main(["--sizes", "cpu-xs", "--steps", "f", "--modality", "image", "video", "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python -m models.summary --sizes cpu-xs --steps f")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["size", "step", "modality"],
        ["cpu-xs", "f", "image"],
        ["cpu-xs", "f", "video"],
    ]
    assert D.render("bench cell model_sizes modality=image params_m", tmp_path) == "0.6"  # model.md: 0.63 M
    import torch

    assert torch.is_grad_enabled()  # called in-process, it leaves grad mode as it found it


def test_bench_mae_appends_the_line_the_sparse_against_dense_figures_read(tmp_path, monkeypatch):
    from analysis import bench_mae as B

    monkeypatch.setattr(B, "_mae", lambda args, step, dense: "dense" if dense else "sparse")  # no model built
    monkeypatch.setattr(B, "_input", lambda mae, batch, device: None)
    monkeypatch.setattr(B, "_step_fn", lambda mae, x, opt, amp: mae)
    monkeypatch.setattr(B, "time_interleaved", lambda fns, *a: {"sparse": 7.2, "dense": 14.9})
    monkeypatch.setattr(B, "forward_gmacs", lambda mae, x: {"sparse": 10.17, "dense": 18.14}[mae])
    out = tmp_path / "bench/mae_sparse_dense.csv"
    for batch in ("16", "8"):
        B.main(["--optimizer", "--batch", batch, "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python -m analysis.bench_mae --optimizer --batch 16 --csv")
    assert lines[1].split(",") == B.CSV_COLUMNS and len(lines) == 4
    assert lines[3] == "B,image,f,8,0.6,fwd+bwd+AdamW,7.2,14.9,2.07x,10.17,18.14,1.78x"
    assert D.render("bench cell mae_sparse_dense batch=8 dense_over_sparse", tmp_path) == "2.07x"


def test_bench_model_appends_the_lines_the_speed_section_reads(tmp_path, monkeypatch):
    from analysis import bench_model as B

    speeds = iter([10.0, 5.0, 20.0, 10.0] + [10.0, 9.0] * 10)  # ours, timm per pair; then per row
    pairs = [("row f vs timm x", None, None), ("row mvitv2 vs timm y", None, None)]
    monkeypatch.setattr(B, "timm_pairs", lambda size: pairs)
    monkeypatch.setattr(B, "measure", lambda *a: next(speeds))
    model = type("M", (), {"eval": lambda self: self, "cfg": type("C", (), {"input_size": (8, 8)})})()
    monkeypatch.setattr(B.models, "build", lambda *a, **k: model)  # nothing built or timed
    monkeypatch.setattr(B, "gmacs", lambda *a, **k: 1.5)
    out = tmp_path / "bench/model_speed.csv"
    B.main(["--device", "cpu", "--rounds", "1", "--table1", "image", "--table1-size", "T", "--csv", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by: python -m analysis.bench_model --device cpu --rounds 1")
    assert lines[2:] == [
        "CPU,fp32,8,row f vs timm x,10.0,5.0,2.00x",
        "CPU,fp32,8,row mvitv2 vs timm y,20.0,10.0,2.00x",
    ]
    rows = (tmp_path / "bench/model_speed_table1.csv").read_text().splitlines()
    assert rows[1].split(",") == B.TABLE1_COLUMNS and len(rows) == 2 + 8  # 7 rows and the conventions line
    view = "bench cell model_speed_table1 row=mvitv2_with_Hiera_conventions over_mvitv2"
    assert D.render(view, tmp_path) == "0.90x"
    assert D.render("bench cell model_speed_table1 row=f paper_over_mvitv2", tmp_path) == "2.42x"
