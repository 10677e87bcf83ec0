"""analysis.stats: the paired bootstrap interval of an accuracy difference, on constructed cases."""

import numpy as np
import pytest

from analysis.stats import paired_difference


def flipped(a: np.ndarray, n_up: int, n_down: int, rng) -> np.ndarray:
    """a with n_up wrong samples made right and n_down right samples made wrong."""
    b = a.copy()
    b[rng.choice(np.flatnonzero(~a), n_up, replace=False)] = True
    b[rng.choice(np.flatnonzero(a), n_down, replace=False)] = False
    return b


def test_identical_predictions_give_zero():
    a = np.random.default_rng(0).random(500) < 0.6
    d = paired_difference(a, a)
    assert (d.diff, d.low, d.high) == (0.0, 0.0, 0.0) and not d.distinguishable
    seeds = np.random.default_rng(1).random((3, 500)) < 0.6  # also with several seeds
    d = paired_difference(seeds, seeds)
    assert (d.diff, d.low, d.high) == (0.0, 0.0, 0.0)


def test_known_difference_is_inside_its_interval_with_the_analytic_width():
    rng = np.random.default_rng(0)
    a = rng.random(1000) < 0.5
    b = flipped(a, 150, 50, rng)  # +10 points: 150 gained, 50 lost
    d = paired_difference(a, b)
    assert d.diff == pytest.approx(10.0) and d.low < 10.0 < d.high and d.distinguishable
    # normal approximation of the paired difference: sd(d_i) / sqrt(n), d_i in {-1, 0, 1}
    half = 1.96 * 100 * np.sqrt(0.15 + 0.05 - 0.1**2) / np.sqrt(1000)
    assert (d.high - d.low) / 2 == pytest.approx(half, rel=0.1)
    assert paired_difference(b, a).diff == pytest.approx(-10.0)  # B minus A


def test_small_difference_is_not_distinguishable():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.5
    d = paired_difference(a, flipped(a, 12, 10, rng))  # +0.4 points on 500 samples
    assert d.low < 0 < d.high and not d.distinguishable


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):  # val sets drawn from a population where B is 3 points better
        a = rng.random(400) < 0.6
        gain = rng.random(400) < 0.08
        loss = rng.random(400) < 0.05
        b = np.where(a, ~loss, gain)
        true = 100 * (0.4 * 0.08 - 0.6 * 0.05)
        d = paired_difference(a, b, n_boot=1000)
        hits += d.low <= true <= d.high
    assert 0.90 <= hits / 200 <= 0.99


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(2)
    a = rng.random((3, 1000)) < 0.5
    same = np.stack([flipped(a[k], 60, 30, rng) for k in range(3)])  # +3 points every seed
    noisy = np.stack([flipped(a[k], 60 + s, 30, rng) for k, s in enumerate((-40, 0, 40))])  # -1, +3, +7
    tight, wide = paired_difference(a, same), paired_difference(a, noisy)
    assert tight.seeds == wide.seeds == 3 and tight.diff == pytest.approx(3.0) == wide.diff
    assert wide.high - wide.low > 2 * (tight.high - tight.low)


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="same"):
        paired_difference(np.ones(10, bool), np.ones(11, bool))


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from analysis.stats import holm, holm_adjusted

    rng = np.random.default_rng(3)
    for m in (1, 2, 6, 15):
        p = rng.random(m) ** 3
        reject, adjusted = multipletests(p, alpha=0.05, method="holm")[:2]
        np.testing.assert_allclose(holm_adjusted(p), adjusted)
        assert (holm(p) == reject).all()
    assert list(holm([0.001, float("nan"), 0.04, 0.02])) == [True, False, True, True]
