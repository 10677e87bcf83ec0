"""The error rates analysis/stats.py and analysis/seed_rounds.py promise, by simulation through
the library functions, on synthetic per-sample outcomes with known effects and seed spreads.

Model: sample i has a difficulty z_i ~ N(0, 1), shared by every run (the validation set); a run
of arm j with seed k has a quality q = mu_j + sigma * e_jk (training noise) and gets sample i right
when z_i + tau * u_ijk < q (u: the run's own per-sample luck). The true top-1 of arm j over val
sets and seeds is Phi(mu_j / sqrt(1 + tau^2 + sigma^2)), so true differences are known exactly.
Monte Carlo error: with S simulations a rate r has standard error sqrt(r (1 - r) / S); the bounds
below are about 3 of those."""

import math

import numpy as np
from scipy import stats as sps

from analysis import seed_rounds as SR
from analysis.stats import holm, mde, paired_difference

TAU, N = 0.5, 400


def runs(rng, sims: int, arms: int, seeds: int, mu, sigma: float) -> np.ndarray:
    """bool (sims, arms, seeds, N): who is right, per simulated experiment, arm, seed and sample."""
    z = rng.standard_normal((sims, 1, 1, N))
    q = np.asarray(mu, float).reshape(1, -1, 1, 1) + sigma * rng.standard_normal((sims, arms, seeds, 1))
    return z + TAU * rng.standard_normal((sims, arms, seeds, N)) < q


def scale(sigma: float) -> float:
    return math.sqrt(1 + TAU**2 + sigma**2)


def true_diff(mu_a: float, mu_b: float, sigma: float) -> float:
    return 100 * float(sps.norm.cdf(mu_b / scale(sigma)) - sps.norm.cdf(mu_a / scale(sigma)))


def mu_for(delta: float, mu_a: float, sigma: float) -> float:
    """The mu of an arm that is `delta` points better than an arm with mu_a."""
    return scale(sigma) * float(sps.norm.ppf(sps.norm.cdf(mu_a / scale(sigma)) + delta / 100))


def diff(x, a: int, b: int, seeds: int | None = None, boot: int = 500, seed: int = 0):
    return paired_difference(x[a, :seeds], x[b, :seeds], n_boot=boot, seed=seed)


def test_intervals_cover_the_true_difference_about_95_percent():
    rng = np.random.default_rng(0)
    for seeds, sigma in ((1, 0.0), (3, 0.1)):
        sims = 300
        x = runs(rng, sims, 2, seeds, [0.2, 0.3], sigma)
        true = true_diff(0.2, 0.3, sigma)
        hits = [d.low <= true <= d.high for d in (diff(x[i], 0, 1, boot=1000, seed=i) for i in range(sims))]
        assert 0.91 <= np.mean(hits) <= 0.99, (seeds, np.mean(hits))


def chain_family(x, seeds: list[int] | int) -> list:
    """A Table 1 family on one simulated experiment: each arm minus the one before."""
    counts = [seeds] * x.shape[0] if isinstance(seeds, int) else seeds
    return [diff(x, j, j + 1, min(counts[j], counts[j + 1]), seed=j) for j in range(x.shape[0] - 1)]


def test_family_wise_false_positives_stay_at_5_percent_under_the_global_null():
    rng = np.random.default_rng(1)
    sims, arms = 300, 6
    x = runs(rng, sims, arms, 3, [0.3] * arms, 0.1)  # no arm differs from any other
    raw, adjusted = 0, 0
    for i in range(sims):
        fam = chain_family(x[i], 3)
        raw += any(d.distinguishable for d in fam)
        adjusted += holm([d.p for d in fam]).any()
    assert adjusted / sims <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    assert raw / sims > 2 * adjusted / sims  # uncorrected, the family errs far more often


def test_adaptive_seeds_keep_the_family_wise_rate_under_the_global_null():
    """The rounds' rule (analysis.seed_rounds.grow) on null families: seeds go to the comparisons
    whose MDE is above the target but reachable within the cap; Holm on the final intervals."""
    rng = np.random.default_rng(2)
    sims, arms, lo, cap, target = 200, 4, 2, 5, 12.0
    x = runs(rng, sims, arms, cap, [0.3] * arms, 0.15)
    comps = [
        SR.Comparison(f"{j + 1} - {j}", ((1, str(j + 1)), (-1, str(j))), target) for j in range(arms - 1)
    ]
    errors, grown = 0, 0
    for i in range(sims):
        counts = {str(j): lo for j in range(arms)}
        while True:
            fam = chain_family(x[i], [counts[str(j)] for j in range(arms)])
            more = SR.grow(fam, comps, counts, cap)
            if not more:
                break
            for a in more:
                counts[a] += 1
        grown += sum(counts.values()) > lo * arms
        errors += holm([d.p for d in fam]).any()
    assert grown > sims / 4  # the rule did add seeds in many families
    assert errors / sims <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)


def test_power_at_the_reported_mde_is_80_percent():
    rng = np.random.default_rng(3)
    sims = 300
    # one seed: the MDE comes from the sample noise alone, measured precisely on one experiment
    null = runs(rng, sims, 2, 1, [0.2, 0.2], 0.0)
    reported = np.median([mde(d.se_sample, d.se_seed, 1) for d in (diff(null[i], 0, 1) for i in range(sims))])
    x = runs(rng, sims, 2, 1, [0.2, mu_for(reported, 0.2, 0.0)], 0.0)
    power = np.mean([diff(x[i], 0, 1, seed=i).low > 0 for i in range(sims)])
    assert abs(power - 0.8) <= 3 * math.sqrt(0.16 / sims), power
    # three seeds: the MDE the report gives for the true sample and seed parts of the error
    null = runs(rng, sims, 2, 3, [0.2, 0.2], 0.1)
    ds = [diff(null[i], 0, 1, seed=i) for i in range(sims)]
    se_sample = float(np.mean([d.se_sample for d in ds]))
    se_seed = math.sqrt(max(np.var([d.diff for d in ds]) - se_sample**2, 0.0))
    planted = mde(se_sample, se_seed, 3)
    x = runs(rng, sims, 2, 3, [0.2, mu_for(planted, 0.2, 0.1)], 0.1)
    power = np.mean([diff(x[i], 0, 1, seed=i).low > 0 for i in range(sims)])
    assert abs(power - 0.8) <= 3 * math.sqrt(0.16 / sims), power
