"""`--seeds LO..HI` (or `--seeds auto`): seeds added in rounds, only where they decide.

Every arm of the selection (a table entry: its runs over seeds) starts with LO seeds. After a
round has finished, each comparison of the selection's family (Table 1 / Fig. 8: each row minus
the row before; an interaction table: each component alone, in the path, and their difference)
is one of:
- decided: its minimum detectable effect (analysis/stats.py: 80% power at Holm's level 0.05 / m)
  is at most the target effect: it resolves what the user asked for;
- unresolvable: even HI seeds would not bring the MDE to the target (seeds_needed is None;
  typically the validation set's sample noise alone is too large);
- undecided: neither. Each arm of an undecided comparison gets one more seed (up to HI).
It stops when no arm gets a seed. The rule stops on precision, never on significance (whether
the interval excludes 0): optional stopping on significance inflates false positives. Stopping
on the plain spread s would still favour comparisons whose s came out small by chance, whose t
is then large: in simulation that raised the family-wise rate from 3.8% (fixed seeds) to 5.5%.
So the rule reads the seed spread "blinded", as blinded sample size re-estimation does (Kieser
& Friede 2003, "Simple procedures for blinded sample size adjustment that do not affect the
type I error rate", Stat. Med. 22(23)): the per-seed differences' second moment about 0,
s0^2 = ((K - 1) s^2 + K mean^2) / K (blinded_se_seed), which a small s alone cannot make small
when the estimate is far from 0. With it the rate was 3.0% in the same simulation
(tests/test_stats_simulation.py checks it under the global null). The price: a comparison with
a large effect looks imprecise to the rule, so it gets no seeds (its effect is clear anyway) or,
when the cap allows, more than it needs.

Which runs a round trains is a function of the finished runs on disk only: rerunning the same
command (after a kill, or to submit the next round of cluster jobs) plans the same rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ablations.store.predictions import DamagedPredictions, correct, load_predictions, predictions_path
from ablations.study import runs as R
from ablations.study.config import Run, list_rows
from ablations.study.status import folder_state
from analysis import stats
from analysis.stats import Difference

AUTO = (3, 8)  # --seeds auto


def blinded_se_seed(d: Difference) -> float:
    """The seed part of the standard error from the per-seed differences' second moment about 0,
    not about their mean: s0^2 = ((K - 1) s^2 + K mean^2) / K, se = s0 / sqrt(K)."""
    k = d.seeds
    s2 = (d.se_seed * math.sqrt(k)) ** 2
    return math.sqrt(((k - 1) * s2 + k * d.diff**2) / k / k)


@dataclass(frozen=True)
class Comparison:
    """sum(weight x arm) over the arms (run folders without /seed<k>), e.g. [(+1, b), (-1, a)]."""

    label: str
    terms: tuple[tuple[int, str], ...]
    target: float  # points; NaN or 0: nothing to resolve

    @property
    def arms(self) -> list[str]:
        return [a for _, a in self.terms]


def arm_of(run: Run) -> str:
    return run.name.rsplit("/seed", 1)[0]


def needs_seed(d: Difference, family: int, target: float, cap: int) -> bool:
    """Undecided and resolvable within `cap` seeds: the MDE is above the target, and some K <= cap
    brings it there (precision only: d's estimate and interval are not looked at)."""
    if not target > 0 or d.seeds < 2 or d.seeds >= cap:
        return False
    se_seed = blinded_se_seed(d)
    if stats.mde(d.se_sample, se_seed, d.seeds, family) <= target:
        return False
    return stats.seeds_needed(d.se_sample, se_seed, d.seeds, target, family, cap=cap) is not None


def grow(diffs: list[Difference | None], comparisons: list[Comparison], counts: dict[str, int], cap: int
         ) -> set[str]:  # fmt: skip
    """The arms that get one more seed this round: those of every comparison that needs_seed
    (family size m = the comparisons with numbers), below the cap."""
    m = sum(d is not None for d in diffs)
    out = set()
    for d, c in zip(diffs, comparisons):
        if d is not None and needs_seed(d, m, c.target, cap):
            out |= {a for a in c.arms if counts[a] < cap}
    return out


def verdict(d: Difference | None, family: int, target: float, cap: int) -> str:
    """One comparison's state after the rounds, in words (MDE: the report's, from the spread)."""
    if d is None:
        return "no numbers (runs or predictions missing)"
    if not target > 0:
        return "no target effect: nothing to resolve"
    mde = stats.mde(d.se_sample, d.se_seed, d.seeds, family)
    blinded = stats.mde(d.se_sample, blinded_se_seed(d), d.seeds, family)
    if blinded <= target:
        return f"decided: MDE {mde:.1f} <= target {target:.1f} ({d.seeds} seeds)"
    if needs_seed(d, family, target, cap):
        return f"undecided: MDE {mde:.1f} > target {target:.1f}; more seeds resolve it"
    return f"no more seeds: {cap} would not bring the MDE ({mde:.1f} at {d.seeds} seeds) to {target:.1f}"


# ----------------------------------------------------------------------------- the selection's family


def comparisons(runs: list[Run], spec: dict, target: float | None, paper: dict) -> list[Comparison]:
    """The family the rounds decide on. Table 1 / Fig. 8 (and tables without an interaction
    reference): each entry minus the one before, in table order; an interaction table: each
    component alone, in its path, and alone - path (analysis/interactions.py). target: --resolve's
    points; None: the paper's own Table 1 step between the two rows (Fig. 8 gives no numbers: its
    supervised steps aim at Table 1's; NaN where the paper has no row, e.g. a table file's own)."""
    arms, order = {}, []
    for r in runs:
        if r.entry not in arms:
            arms[r.entry] = arm_of(r)
            order.append(r.entry)
    modality = runs[0].modality if runs else "image"

    def aim(a: str, b: str) -> float:
        if target is not None:
            return float(target)
        rows = paper["table1"]["rows"]
        pa, pb = (rows.get(x, {}).get(modality, {}).get("acc") for x in (a, b))
        return abs(pb - pa) if pa is not None and pb is not None else math.nan

    inter = spec.get("interaction")
    if not inter:
        return [
            Comparison(f"{b} - {a}", ((1, arms[b]), (-1, arms[a])), aim(a, b))
            for a, b in zip(order, order[1:])
        ]
    rows, sign, out = list_rows(), (1 if inter.get("change", "put_back") == "put_back" else -1), []
    ref = arms.get(inter["reference"])
    for name, e in (spec.get("rows") or {}).items():
        comp = (e or {}).get("component")
        if not comp or name not in arms or ref is None:
            continue
        prev = rows[rows.index(comp) - 1]
        alone = ((sign, arms[name]), (-sign, ref))
        c = [Comparison(f"{comp}: alone", alone, aim(prev, comp))]
        if prev in arms and comp in arms:
            path = ((1, arms[prev]), (-1, arms[comp]))
            c += [Comparison(f"{comp}: path", path, aim(prev, comp)),
                  Comparison(f"{comp}: difference", alone + tuple((-w, a) for w, a in path),
                             math.nan if target is None else float(target))]  # fmt: skip
        out += c
    return out


# ----------------------------------------------------------------------------- rounds on disk


@dataclass
class Plan:
    """Where the rounds stand: `todo` the unfinished runs of the current round (empty: done),
    `planned` every run up to the current round, `lines` each comparison's state."""

    todo: list[Run]
    planned: list[Run]
    round: int
    counts: dict[str, int]
    lines: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.todo


def finished(runs_dir: Path, run: Run) -> bool:
    """Finished with this run's identity (a folder that trained something else is not: it is
    retrained with --force, and its old predictions never decide a round)."""
    return folder_state(runs_dir, run)[0] == "done"


def correct_of(runs_dir: Path, run: Run) -> np.ndarray | None:
    path = predictions_path(R.run_dir(runs_dir, run), run.config["mode"])
    try:
        return correct(load_predictions(path), 1) if path.exists() else None
    except DamagedPredictions:
        return None


def evaluate(runs_dir: Path, by_arm: dict[str, list[Run]], counts: dict[str, int], c: Comparison
             ) -> Difference | None:  # fmt: skip
    """The comparison's paired contrast over the seeds all its arms have in this round."""
    seeds = set.intersection(*({r.seed for r in by_arm[a][: counts[a]]} for a in c.arms))
    seeds = sorted(seeds)
    if not seeds:
        return None
    arrays = []
    for w, a in c.terms:
        rows = [correct_of(runs_dir, r) for r in by_arm[a] if r.seed in seeds]
        if any(x is None for x in rows) or len({x.shape for x in rows}) != 1:
            return None
        arrays.append((w, np.stack(rows)))
    if len({x.shape for _, x in arrays}) != 1:
        return None
    return stats.paired_contrast(arrays)


def plan(runs_dir: Path, runs: list[Run], family: list[Comparison], lo: int, hi: int) -> Plan:
    """Replays the rounds from the finished runs on disk: the first round with an unfinished run
    is the current one; a round whose runs all finished adds the seeds grow() asks for."""
    by_arm: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        by_arm.setdefault(arm_of(r), []).append(r)
    counts = {a: min(lo, len(rs)) for a, rs in by_arm.items()}
    rnd = 1
    while True:
        planned = [r for a, rs in by_arm.items() for r in rs[: counts[a]]]
        planned.sort(key=lambda r: (r.seed, runs.index(r)))
        todo = [r for r in planned if not finished(runs_dir, r)]
        if todo:
            return Plan(
                todo,
                planned,
                rnd,
                dict(counts),
                [f"round {rnd}: {len(todo)} of {len(planned)} runs to train"],
            )
        diffs = [evaluate(runs_dir, by_arm, counts, c) for c in family]
        more = grow(diffs, family, counts, hi)
        if not more:
            m = sum(d is not None for d in diffs)
            lines = [f"rounds done after round {rnd} ({len(planned)} runs)"]
            lines += [f"  {c.label}: {verdict(d, m, c.target, hi)}" for c, d in zip(family, diffs)]
            return Plan([], planned, rnd, dict(counts), lines)
        for a in more:
            counts[a] += 1
        rnd += 1
