"""Is an accuracy difference between two runs more than noise? A paired bootstrap 95% interval.

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
With one seed the interval covers sample noise only: training noise is not measured, and
differences of the order of the seed spread can still look distinguishable; use --seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_BOOT, SEED, LEVEL = 4000, 0, 0.95


@dataclass(frozen=True)
class Difference:
    """B minus A in top-1 percentage points, with its interval; n samples, k seeds."""

    diff: float
    low: float
    high: float
    n: int
    seeds: int

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
    patterns, counts = np.unique(d.T, axis=0, return_counts=True)  # (U, K), (U,)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)  # (n_boot, U): resampled counts per pattern
    reps = 100.0 * (draws @ patterns).mean(1) / n  # (n_boot,): mean over seeds of resampled differences
    if k > 1:
        spread = per_seed.std(ddof=1) / math.sqrt(k)
        reps = reps + spread * rng.standard_t(k - 1, size=n_boot)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(reps, [tail, 100 - tail])
    return Difference(float(per_seed.mean()), float(low), float(high), n, k)
