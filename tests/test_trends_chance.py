"""Trends at chance: a row that never left chance has nothing to lose, so a trend that
depends on it is "not testable (rows X at chance)", not "holds" (analysis/trends.py)."""

import numpy as np

from analysis import trends
from tests.test_analysis import fake_predictions, fake_run, runs_of  # noqa: F401 (fixture)
from tests.test_trends_table3 import BASE, N, fake_rows, shifted, statements

CHANCE = np.random.default_rng(1).random(N) < 0.1  # ~10% right on 10 classes: chance


def test_rows_at_chance_make_their_trends_not_testable(tmp_path):
    # The README's video Table 1 before a fix of the video MAE: MAE a-e at chance, f learned; supervised fine.
    mae = dict.fromkeys("abcde", CHANCE) | {"f": shifted(-15)}
    fake_rows(tmp_path, mae, {"mvitv2": shifted(20), "f": BASE})
    s = statements(tmp_path)
    rows = ", ".join(f"MAE {r}" for r in "abcde")
    assert s["(1)"] == f"{trends.NOT_TESTABLE} (rows {rows} at chance)"  # was "holds": no drop from a to f
    assert "- at chance (10.0% = 1 / classes inside or above the row's 95% interval): MAE a " in s["image"]
    assert "MAE f - MAE a: +" in s["image"]  # the numbers are still shown
    assert s["(2)"] == trends.HOLDS and s["(3)"] == trends.FAILS  # they do not depend on rows a-e
    assert "(1) MAE keeps accuracy across rows a-f: not testable (rows MAE a" in trends.verdicts(s["text"])


def test_a_supervised_row_at_chance_makes_fig8_trends_not_testable(tmp_path):
    # supervised f at chance: "supervised loses accuracy from mvitv2 to f" would otherwise hold
    fake_rows(tmp_path, dict.fromkeys("abcdef", BASE), {"mvitv2": BASE, "f": CHANCE})
    s = statements(tmp_path)
    assert s["(1)"] == trends.HOLDS
    assert s["(2)"] == s["(3)"] == f"{trends.NOT_TESTABLE} (rows supervised f at chance)"


def test_a_row_just_above_chance_is_tested(tmp_path):
    # 20% on 500 samples: the interval (about +-3.5 points) stays above 10%
    fake_rows(tmp_path, dict.fromkeys("abcdef", shifted(-30)), {"mvitv2": shifted(-30), "f": shifted(-30)})
    s = statements(tmp_path)
    assert s["(1)"] == trends.HOLDS and s["(2)"] == trends.FAILS and s["(3)"] == trends.FAILS
    assert "at chance" not in s["image"]


def test_each_rows_interval_against_chance_is_a_results_file_the_docs_render(tmp_path):
    # chance.csv: the test behind "at chance", per row, so a page can show which rows left chance
    from analysis.collect import load_runs
    from analysis.doc_views import Results, view_chance

    fake_rows(
        tmp_path, dict.fromkeys("abcde", CHANCE) | {"f": shifted(-15)}, {"mvitv2": shifted(20), "f": BASE}
    )
    frame = trends.chance_frame(load_runs(tmp_path), tmp_path, "cpu")
    above = {(r.mode, r.row): r.above_chance for r in frame.itertuples()}
    assert above == {**{("mae", r): False for r in "abcde"}, ("mae", "f"): True,
                     ("supervised", "mvitv2"): True, ("supervised", "f"): True}  # fmt: skip
    assert (frame["low"] <= frame["top1"]).all() and (frame["top1"] <= frame["high"]).all()
    assert set(frame["chance"]) == {10.0} and set(frame["modality"]) == {"image"}
    (tmp_path / "fig").mkdir()
    frame.to_csv(tmp_path / "fig/chance.csv", index=False)
    table = view_chance(Results(tmp_path / "fig"), "image")
    assert "| f | " in table and "**above** | " in table and table.count("at chance") == 5
    assert "| b | – | –" not in table and "| b | " in table and "| e | " in table
