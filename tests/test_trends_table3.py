"""The Table 3 figure and differences, and the trend statements (analysis/trends.py), from small
fake run folders with per-sample predictions."""

import copy
import dataclasses

import numpy as np

from ablations.study import config as C
from analysis import differences, plots, table3_plot, tables, trends
from analysis.collect import load_runs, no_recipe, paper_numbers
from analysis.report import write_report
from tests.test_analysis import fake_predictions, fake_run, fake_speeds, runs_of  # noqa: F401 (fixture)

N = 500
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 10, N)
BASE = RNG.random(N) < 0.5


def shifted(points: int, base: np.ndarray = BASE) -> np.ndarray:
    """base with `points` percentage points more (or fewer) samples right."""
    out = base.copy()
    k = abs(points) * N // 100
    out[np.flatnonzero(~base if points > 0 else base)[:k]] = points > 0
    return out


def run(tmp_path, r: C.Run, correct: np.ndarray | None):
    """A finished run; correct=None: one that finished before predictions.npz existed."""
    fake_run(tmp_path, r, 100.0 * correct.mean() if correct is not None else 50.0)
    if correct is not None:
        fake_predictions(tmp_path, r, correct, LABELS)


def panels(fig) -> dict[str, object]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_table3_figure_one_panel_per_subtable_defaults_marked(tmp_path):
    t1, t3 = runs_of(table="table1"), runs_of(table="table3")
    run(tmp_path, t1["f"], BASE)
    run(tmp_path, t3["mask_ratio-0.5"], shifted(-10))
    frame = tables.table3(load_runs(tmp_path), "cpu", paper_numbers())[0]
    fig = table3_plot.table3_figure(frame, "t")
    groups = C.load_table("table3")["groups"]
    assert sorted(panels(fig)) == sorted(f"{g['title']}, image" for g in groups.values())  # no video runs
    ax = panels(fig)["(b) mask ratio, image"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.6", "0.7"]
    (star,) = [ln for ln in ax.get_lines() if ln.get_label() == "ours default (row f)"]
    assert star.get_xdata()[0] == 1 and star.get_ydata()[0] == 100.0 * BASE.mean()  # cpu's 0.6 = row f
    twin = next(a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds)
    (paper_star,) = [ln for ln in twin.get_lines() if ln.get_label() == "paper default"]
    assert list(paper_star.get_xdata()) == [1] and list(paper_star.get_ydata()) == [85.6]
    # the cpu preset pretrains without drop path: our default 0.0, the paper's 0.2
    ax = panels(fig)["(d) drop path (pretraining), image"]
    (star,) = [ln for ln in ax.get_lines() if ln.get_label() == "ours default (row f)"]
    assert star.get_xdata()[0] == 0
    assert len({ax.get_ylim() for ax in panels(fig).values()}) == 1  # one range per modality
    # a video run adds the video panels (mask ratios 0.75 / 0.9 / 0.95)
    run(tmp_path, runs_of(table="table1", modality="video")["f"], BASE)
    frame = tables.table3(load_runs(tmp_path), "cpu", paper_numbers())[0]
    fig = table3_plot.table3_figure(frame, "t")
    assert len(panels(fig)) == 2 * len(groups)
    ax = panels(fig)["(b) mask ratio, video"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.75", "0.9", "0.95"]


def test_table3_differences_against_each_subtables_default(tmp_path):
    t1, t3 = runs_of(table="table1"), runs_of(table="table3")
    run(tmp_path, t3["mask_ratio-0.5"], shifted(20))
    frame = differences.table3_differences(load_runs(tmp_path), tmp_path, "cpu")
    assert "mask_ratio: 0.5 - default" in set(frame["comparison"])  # no row f: default unknown
    assert frame["diff"].isna().all()
    run(tmp_path, t1["f"], BASE)
    run(tmp_path, t3["mask_ratio-0.7"], BASE)
    frame = differences.table3_differences(load_runs(tmp_path), tmp_path, "cpu")
    md = differences.differences_markdown(frame)
    line = next(ln for ln in md.splitlines() if ln.startswith("| mask_ratio: 0.5 - 0.6 |"))
    assert "+20.0 [" in line and "n.d." not in line and line.endswith("| n/a | n/a |")
    assert "| mask_ratio: 0.7 - 0.6 | +0.0 [+0.0, +0.0] n.d. | 1 | n/a | n/a |" in md
    assert "| drop_path: 0.2 - 0.0 | – | – | n/a | n/a |" in md  # cpu's default drop path is 0.0
    assert "mask_ratio: 0.6 - 0.6" not in md
    # a row f whose drop path no entry has: entries are compared with row f itself
    f = t1["f"]
    cfg = copy.deepcopy(f.config)
    cfg["pretrain"]["drop_path"] = 0.05
    run(tmp_path / "other", dataclasses.replace(f, config=cfg), BASE)
    run(tmp_path / "other", t3["drop_path-0.1"], shifted(-20))
    md = differences.differences_markdown(
        differences.table3_differences(load_runs(tmp_path / "other"), tmp_path / "other", "cpu")
    )
    assert "| drop_path: 0.1 - row f | -20.0 [" in md and "| drop_path: 0.0 - row f | – |" in md


def test_report_writes_the_table3_figure_and_trends(tmp_path, fake_speeds):  # noqa: F811
    t1, t3 = runs_of(table="table1"), runs_of(table="table3")
    run(tmp_path, t1["f"], BASE)
    run(tmp_path, t3["target-hog"], shifted(5))
    out = write_report(tmp_path) / "cpu"
    assert (out / "table3.png").stat().st_size > 1000 and (out / "table3.pdf").exists()
    assert (out / "table3_differences.png").stat().st_size > 1000
    assert "target: hog - pixel,image,5.0000" in (out / "table3_differences.csv").read_text()
    assert "| target: hog - pixel | +5.0 [" in (out / "table3.md").read_text()
    text = (out / "trends.md").read_text()
    assert "**(1) MAE keeps accuracy across rows a-f: not known yet.**" in text
    assert "(cpu/trends.md)" in (out.parent / "index.md").read_text()


def fake_rows(tmp_path, mae: dict, supervised: dict, seeds: int = 1, modality: str = "image"):
    """Table 1 MAE rows and Fig. 8 supervised rows with the given correct@1 arrays (per seed: a
    function of the seed index)."""
    for table, correct in (("table1", mae), ("fig8", supervised)):
        for r in C.resolve(C.Selection(table=table, seeds=seeds, modality=modality)):
            if r.entry in correct:
                c = correct[r.entry]
                run(tmp_path, r, c(r.seed) if callable(c) else c)


def statements(tmp_path) -> dict[str, str]:
    """{trend title: verdict} of the image section, and the whole text under "text"."""
    text = trends.trends_markdown(load_runs(tmp_path), tmp_path, "cpu")
    image = text.split("## image")[1].split("## video")[0]
    out = {"text": text, "image": image}
    for title, _ in trends.TRENDS:
        out[title[:3]] = image.split(f"**{title}: ")[1].split(".**")[0]
    return out


def test_trends_hold_as_in_the_paper(tmp_path):
    mae = dict.fromkeys("abcdef", shifted(10))  # identical predictions on every MAE row
    fake_rows(tmp_path, mae, {"mvitv2": shifted(20), "f": BASE}, seeds=2)
    s = statements(tmp_path)
    assert (s["(1)"], s["(2)"], s["(3)"]) == (trends.HOLDS, trends.HOLDS, trends.HOLDS)
    assert "MAE f - MAE a: +0.0 [+0.0, +0.0] n.d. (2 seeds)" in s["image"]
    assert "no row below the one before" in s["image"]
    assert "supervised f - supervised mvitv2: -20.0 [" in s["image"] and "MAE wins" in s["image"]
    assert f"supervised mvitv2: {100 * shifted(20).mean():.2f} ± 0.00% (2 seeds)" in s["image"]
    assert "Missing" not in s["image"]
    assert "No Table 1 or Fig. 8 runs" in s["text"].split("## video")[1]
    assert "python ablate.py --table 1 --preset cpu --modality video --seeds 1" in s["text"]


def test_trends_name_no_command_for_a_modality_the_preset_has_no_recipe_for(tmp_path, monkeypatch):
    """in1k-b is images only: its video section says so instead of printing a command that fails."""
    for table, row in (("table1", "f"), ("fig8", "f")):
        r = next(x for x in C.resolve(C.Selection(table=table, preset="in1k-b")) if x.entry == row)
        run(tmp_path, r, BASE)
    video = trends.trends_markdown(load_runs(tmp_path), tmp_path, "in1k-b").split("## video")[1]
    assert "No video runs: preset 'in1k-b' has no video recipe." in video
    assert "ablate.py" not in video
    df = load_runs(tmp_path)
    assert no_recipe(df, "in1k-b") == ("video",)
    texts, titles = [], []
    save = plots.save
    monkeypatch.setattr(
        plots,
        "save",
        lambda fig, *a: (
            texts.extend(t.get_text() for x in fig.axes for t in x.texts)
            or titles.extend(x.get_title() for x in fig.axes)
            or save(fig, *a)
        ),
    )
    plots.fig8(tables.fig8(df, "in1k-b", paper_numbers())[0], tmp_path / "out", "t", no_recipe(df, "in1k-b"))
    assert titles == ["image"] and texts == []  # a panel only for the modality with results
    plots.fig8(tables.fig8(df.iloc[:0], "in1k-b", paper_numbers())[0], tmp_path / "o2", "t", ("video",))
    assert texts == ["no image runs yet", "no video recipe in this preset"]  # none has: each says why


def test_trends_that_do_not_hold(tmp_path):
    mae = dict.fromkeys("abc", BASE) | dict.fromkeys("def", shifted(-20))  # a clear drop at d
    fake_rows(tmp_path, mae, {"mvitv2": BASE, "f": shifted(10)})
    s = statements(tmp_path)
    assert (s["(1)"], s["(2)"], s["(3)"]) == (trends.FAILS, trends.FAILS, trends.FAILS)
    assert "largest drop between adjacent rows: MAE d - MAE c: -20.0 [" in s["image"]
    assert "significant drops (after Holm): MAE d - MAE c, MAE f - MAE a" in s["image"]
    assert "reversed: supervised f is significantly better" in s["image"]
    assert "supervised wins" in s["image"]


def test_seed_spread_can_make_a_difference_not_distinguishable(tmp_path):
    # MAE f beats supervised f by +20 points with seed 0 and loses by 20 with seed 1
    sup = {"mvitv2": BASE, "f": BASE}
    mae = dict.fromkeys("abcde", BASE) | {"f": lambda seed: shifted(20 if seed % 2 == 0 else -20)}
    fake_rows(tmp_path, mae, sup, seeds=2)
    s = statements(tmp_path)
    assert s["(3)"] == trends.FAILS and "not distinguishable" in s["image"]
    assert "MAE f - supervised f: +0.0 [" in s["image"] and "(2 seeds)" in s["image"]


def test_missing_runs_are_named_with_the_commands_that_make_them(tmp_path):
    mae = {"a": None, "f": BASE}  # row a finished before predictions.npz existed
    fake_rows(tmp_path, mae, {})
    s = statements(tmp_path)
    assert (s["(1)"], s["(2)"], s["(3)"]) == (trends.UNKNOWN,) * 3
    assert "MAE b (no finished run)" in s["image"] and "supervised f (no finished run)" in s["image"]
    assert "MAE a (finished without predictions.npz)" in s["image"]
    for cmd in ("--table 1 --preset cpu --modality image --seeds 1", "--fig 8 --preset cpu --modality image",
                "--step a --force --preset cpu --modality image"):  # fmt: skip
        assert f"python ablate.py {cmd}" in s["image"], cmd
    # a drop already measured is stated while other rows are still missing
    fake_rows(tmp_path, {"b": BASE, "c": shifted(-30)}, {})
    s = statements(tmp_path)
    assert s["(1)"] == trends.FAILS and "significant drops (after Holm): MAE c - MAE b" in s["image"]
