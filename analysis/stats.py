"""Is an accuracy difference between two runs more than noise? A paired bootstrap 95% interval,
a family-wise verdict, and what the comparison can resolve.

Method (the report and docs/results.md cite this docstring):
- Both runs are evaluated on the same validation samples, so the difference is paired per
  sample: d_i = correct_B(i) - correct_A(i), in {-1, 0, 1}; the difference in top-1 is
  100 * mean(d) percentage points (B minus A).
- Sample noise (which images happen to be in the val set): resample the N samples with
  replacement, B times (default 4000, fixed seed), the same indices for both runs and for every
  seed. Because d takes few values, a resample is fully described by how many times each
  distinct per-sample pattern (d over seeds) is drawn, a multinomial draw over the patterns:
  exact, and O(B x patterns) instead of O(B x N).
- Seed noise (which training run we got), with K > 1 seeds paired by seed number: the estimate
  is the mean over seeds of the per-seed paired differences; each bootstrap replicate gets an
  added draw s / sqrt(K) * t_(K-1), s the between-seed standard deviation of the per-seed
  differences (Student t: with 2-3 seeds the seed spread itself is uncertain, and the interval
  widens accordingly). The two sources are treated as independent (their variances add).
- The interval is the 2.5 and 97.5 percentiles of the replicates. Identical predictions give
  exactly [0, 0]; an interval containing 0 means "not distinguishable from noise" at this scale.
  Its two-sided p-value, for the family's adjustment, is the probability of the interval's own
  model (sample noise normal with the sample part's variance, plus the scaled t of the seeds)
  beyond |difference|, by quadrature (p_value): what the replicates beyond 0 estimate, without
  their Monte Carlo noise at Holm's small levels. The interval excludes 0 when p < 0.05, up to
  the bootstrap's Monte Carlo error at the border.
- Families. Every report table is a family (Table 1's adjacent steps, Fig. 8's rows, Table 3's
  entries, an interaction table's comparisons, a sweep against its first value, the trends),
  per modality. Its verdicts are adjusted with Holm's step-down procedure (Holm 1979; the
  numbers of statsmodels.stats.multitest.multipletests, method "holm"): the probability of calling any
  null comparison of the family distinguishable stays at or below 5% whatever the
  dependence between the comparisons. Holm rather than simultaneous intervals because the
  comparisons share runs (Table 1's row b is in b - a and c - b), so their joint distribution
  is not a simple product, and Holm needs no model of it; it is uniformly more powerful than
  Bonferroni at the same guarantee. The raw 95% interval stays beside the adjusted verdict: it
  says how large the effect may be; the verdict says whether it survives the family.
- Resolution. The standard error splits into sample noise, se_sample = sd_i(mean over seeds of
  d_i) / sqrt(N) (binomial noise of the val set, from the per-sample predictions), and seed
  noise, se_seed = s / sqrt(K). The minimum detectable effect (MDE) is the true difference that
  a two-sided test at level 0.05 / m (m = the family's size: Holm's first step, the bar an
  effect must clear when it is the family's only real one) detects with 80% power, from the
  noncentral t with Welch-Satterthwaite degrees of freedom
  df = se^4 / (se_seed^4 / (K - 1)) (scipy.stats.nct; normal with one seed). Seeds needed for
  a target effect: the smallest K whose MDE is at most the target with the same per-seed spread
  s and the same sample noise; none when the sample noise alone keeps the MDE above the target
  (a larger validation set is what helps then). With one seed the seed spread is not measured:
  the interval and MDE cover sample noise only, and seeds needed is unknown. With two seeds the
  spread has one degree of freedom: where it dominates, the MDE is large and itself uncertain
  (a larger validation set can then raise it, by handing the seed part more of the weight).
With one seed the interval covers sample noise only: training noise is not measured, and
differences of the order of the seed spread can still look distinguishable; use --seeds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy import stats as sps

N_BOOT, SEED, LEVEL, POWER = 4000, 0, 0.95, 0.80
SQRT2 = math.sqrt(2.0)
SEED_CAP = 100  # seeds needed beyond this are reported as "more than SEED_CAP"


@dataclass(frozen=True)
class Difference:
    """B minus A in top-1 percentage points, with its interval; n samples, k seeds; p the
    two-sided bootstrap p-value; se_sample / se_seed the two parts of its standard error (points;
    se_seed 0 with one seed: not measured)."""

    diff: float
    low: float
    high: float
    n: int
    seeds: int
    p: float = 1.0
    se_sample: float = 0.0
    se_seed: float = 0.0

    @property
    def distinguishable(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


def paired_difference(
    correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> Difference:
    """correct_a, correct_b: bool (N,) for one seed or (K, N) for K seeds (row k of both = seed k),
    True where the run's prediction is right, on the same N validation samples in the same order."""
    a, b = np.atleast_2d(correct_a), np.atleast_2d(correct_b)
    if a.shape != b.shape or a.shape[1] == 0:
        raise ValueError(f"paired runs need the same (seeds, samples); got {a.shape} and {b.shape}")
    return _bootstrap(b.astype(np.int8) - a.astype(np.int8), n_boot, seed, level)


def paired_contrast(terms: list[tuple[int, np.ndarray]], n_boot: int = N_BOOT, seed: int = SEED,
                    level: float = LEVEL) -> Difference:  # fmt: skip
    """sum of weight x correct over several runs, paired per sample and seed, e.g. an interaction
    [(+1, with_alone), (-1, without_alone), (-1, with_path), (+1, without_path)]: the same
    bootstrap as paired_difference (which is [(-1, a), (+1, b)])."""
    arrays = [np.atleast_2d(c) for _, c in terms]
    if any(x.shape != arrays[0].shape for x in arrays) or arrays[0].shape[1] == 0:
        raise ValueError(f"paired runs need the same (seeds, samples); got {[x.shape for x in arrays]}")
    d = sum(int(w) * x.astype(np.int8) for (w, _), x in zip(terms, arrays))
    return _bootstrap(np.asarray(d, dtype=np.int8), n_boot, seed, level)


def _bootstrap(d: np.ndarray, n_boot: int, seed: int, level: float) -> Difference:
    """d: (K, N) small integers per seed and sample; the method of this module's docstring."""
    k, n = d.shape
    per_seed = 100.0 * d.mean(1)  # (K,)
    mean = float(per_seed.mean())
    patterns, counts = np.unique(d.T, axis=0, return_counts=True)  # (U, K), (U,)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)  # (n_boot, U): resampled counts per pattern
    reps = 100.0 * (draws @ patterns).mean(1) / n  # (n_boot,): mean over seeds of resampled differences
    sample_var, naive = sample_variance(d)
    if k > 1:
        # Resampling samples carries the seed x sample part a second time (it is in s already):
        # shrink the replicates about the estimate to the sample part alone.
        reps = mean + (reps - mean) * (math.sqrt(sample_var / naive) if naive > 0 else 0.0)
        spread = per_seed.std(ddof=1) / math.sqrt(k)
        reps = reps + spread * rng.standard_t(k - 1, size=n_boot)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(reps, [tail, 100 - tail])
    se_sample = 100.0 * math.sqrt(sample_var)
    se_seed = float(per_seed.std(ddof=1)) / math.sqrt(k) if k > 1 else 0.0
    return Difference(
        mean, float(low), float(high), n, k, p_value(mean, se_sample, se_seed, k), se_sample, se_seed
    )


def p_value(diff: float, se_sample: float, se_seed: float, seeds: int) -> float:
    """Two-sided p of the interval's own model: the estimate is the true difference plus sample
    noise N(0, se_sample^2) plus seed noise se_seed * t_(K-1); p = P(|noise| >= |diff|) under a
    true difference of 0, by quadrature over the t (scipy.integrate.quad). What counting the
    bootstrap replicates beyond 0 estimates, without its Monte Carlo noise at Holm's small levels
    (0.05 / m), where noise is liberal. (A Welch-Satterthwaite t test is not used: with 2-3 seeds
    it is liberal whenever the seeds happen to agree, 1.7% instead of 1% at p < 0.01 in
    simulation.)"""
    a = abs(diff)
    if se_seed <= 0 or seeds < 2:
        return (
            1.0
            if se_sample <= 0 and a == 0
            else (0.0 if se_sample <= 0 else math.erfc(a / se_sample / SQRT2))
        )
    df = seeds - 1
    if se_sample <= 0:
        return float(2 * sps.t.sf(a / se_seed, df))
    const = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def tail(t: float) -> float:  # density of t times P(sample noise >= a - se_seed * t)
        return (
            const
            * (1 + t * t / df) ** (-(df + 1) / 2)
            * 0.5
            * math.erfc((a - se_seed * t) / se_sample / SQRT2)
        )

    t0 = a / se_seed  # where the integrand turns from the normal's tail to the t's body
    val = integrate.quad(tail, -math.inf, t0, limit=200)[0] + integrate.quad(tail, t0, math.inf, limit=200)[0]
    return float(min(1.0, 2 * val))


def sample_variance(d: np.ndarray) -> tuple[float, float]:
    """(the sample part of var(mean d), the sample bootstrap's variance var_i(mean_k d) / N), d (K, N).

    Two-way random effects, samples x seeds (method of moments): the per-sample means vary by the
    sample effect plus the seed x sample interaction / K; the interaction's mean square MS_e is
    the residual of the additive fit. The seed part s^2 / K already holds the interaction / N, so
    the sample part is (var_i - MS_e / K) / N (at least 0): the two parts then add to var(mean d)
    without counting the interaction twice (crossed factors: Owen 2007, "The pigeonhole
    bootstrap", Ann. Appl. Stat. 1(2)). With one seed nothing separates them: all of it is sample."""
    k, n = d.shape
    if n < 2:
        return 0.0, 0.0
    cols = d.mean(0)  # (N,) per-sample means over seeds
    naive = float(cols.var(ddof=1)) / n
    if k < 2:
        return naive, naive
    resid = d - d.mean(1, keepdims=True) - cols[None, :] + d.mean()
    ms_e = float((resid.astype(float) ** 2).sum()) / ((k - 1) * (n - 1))
    return max(naive - ms_e / (k * n), 0.0), naive


# ----------------------------------------------------------------------------- families


def holm(p_values, level: float = LEVEL) -> np.ndarray:
    """bool per comparison: distinguishable after Holm's adjustment over the family. NaN p-values
    (a comparison without numbers) are not tested and count as False; the family is the rest."""
    p = np.asarray(p_values, dtype=float)
    out = np.zeros(p.shape, dtype=bool)
    known = ~np.isnan(p)
    out[known] = holm_adjusted(p[known]) <= 1 - level
    return out


def holm_adjusted(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values, max over j <= i of min(1, (m - j) p_(j)) in sorted order: the same
    numbers as statsmodels.stats.multitest.multipletests(p, method="holm")[1] (tests/test_stats.py
    checks it), without its gc.collect() on every call (0.1-0.5 s with large arrays alive, which
    the simulation tests and the rounds' replanning call thousands of times)."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


# ----------------------------------------------------------------------------- resolution


def effective_df(se_sample: float, se_seed: float, seeds: int) -> float:
    """Welch-Satterthwaite degrees of freedom of se^2 = se_sample^2 (inf df) + se_seed^2 (K - 1)."""
    if seeds < 2 or se_seed <= 0:
        return math.inf
    total = se_sample**2 + se_seed**2
    return total**2 / (se_seed**4 / (seeds - 1))


def detectable(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """The true difference a two-sided level-alpha t test with df degrees of freedom rejects with
    probability `power`, for a standard error se (noncentral t; normal for df = inf)."""
    if se <= 0:
        return 0.0
    if math.isinf(df) or df > 1e4:
        return se * float(sps.norm.isf(alpha / 2) + sps.norm.ppf(power))
    return se * _ncp(float(f"{df:.3g}"), alpha, power)  # 3 digits of df: the ncp moves < 0.1%


@functools.lru_cache(maxsize=8192)
def _ncp(df: float, alpha: float, power: float) -> float:
    """The noncentrality at which the test rejects with probability `power` (cached: the rounds
    and the simulation tests ask for the same few thousand df values again and again)."""
    crit = float(sps.t.isf(alpha / 2, df))

    def gap(ncp):  # the far tail is negligible here, and scipy returns NaN for it at large ncp
        return float(sps.nct.sf(crit, df, ncp) + np.nan_to_num(sps.nct.cdf(-crit, df, ncp))) - power

    hi = crit + 3.0  # power is below `power` at 0 and rises with ncp: widen until it is above
    while gap(hi) < 0:
        hi *= 2
    return optimize.brentq(gap, 0.0, hi, xtol=1e-6)


def mde(se_sample: float, se_seed: float, seeds: int, family: int = 1, level: float = LEVEL,
        power: float = POWER) -> float:  # fmt: skip
    """Minimum detectable effect (points) at `power`, at Holm's strictest level (1 - level) / family."""
    se = math.hypot(se_sample, se_seed)
    return detectable(se, effective_df(se_sample, se_seed, seeds), (1 - level) / max(1, family), power)


def seeds_needed(se_sample: float, se_seed: float, seeds: int, target: float, family: int = 1,
                 level: float = LEVEL, power: float = POWER, cap: int = SEED_CAP) -> int | None:  # fmt: skip
    """The fewest seeds whose MDE is at most `target` (points), the per-seed spread and the sample
    noise as measured; None when not within `cap` (or one seed: the spread is not measured).
    The MDE falls with K, so a bisection over K finds it."""
    if seeds < 2 or not target > 0:
        return None
    spread = se_seed * math.sqrt(seeds)  # s: the between-seed sd of the per-seed differences

    def at(k: int) -> float:
        return mde(se_sample, spread / math.sqrt(k), k, family, level, power)

    if at(cap) > target:
        return None
    lo, hi = 2, cap  # at(hi) <= target
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if at(mid) > target else (lo, mid)
    return hi


def sample_floor(se_sample: float, family: int = 1, level: float = LEVEL, power: float = POWER) -> float:
    """The MDE with infinitely many seeds: what the validation set alone allows (points)."""
    return detectable(se_sample, math.inf, (1 - level) / max(1, family), power)


def half_widths(se_sample: float, se_seed: float, seeds: int, level: float = LEVEL) -> tuple[float, float]:
    """(sample, seed) parts of a 95% interval's half-width (points): z * se_sample and
    t_(K-1) * se_seed, each what the interval would be with the other source absent."""
    z = float(sps.norm.isf((1 - level) / 2))
    t = float(sps.t.isf((1 - level) / 2, seeds - 1)) if seeds > 1 else 0.0
    return z * se_sample, t * se_seed
