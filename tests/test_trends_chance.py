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
