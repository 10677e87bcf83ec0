"""The paper's three accuracy trends, stated for one variant from its runs: whether each holds at
this scale, with the differences' 95% intervals (paired bootstrap over the validation samples,
widened by the between-seed spread: analysis/stats.py). The trends' comparisons of one modality
(the six of (1), one each for (2) and (3)) are one family: a difference is significant when its
whole interval lies on one side of 0 and it stays distinguishable after Holm's adjustment over
the family (analysis/stats.py), so the chance that any verdict rests on a null difference is at
most 5%. Verdicts:

(1) MAE keeps accuracy across rows a-f (Table 1): holds when none of the five adjacent
    differences (b - a, ..., f - e) nor f - a is a significant drop.
(2) Supervised from scratch loses accuracy from mvitv2 to f (Fig. 8): holds when supervised f
    minus supervised mvitv2 is a significant drop.
(3) MAE-pretrained f beats supervised f (Fig. 8 vs Table 1): holds when MAE f minus
    supervised f is significantly above 0.
A trend whose comparisons lack runs (or their predictions.npz) is "not known yet", unless the
comparisons that exist already contradict it; the missing runs are named with the command that
trains them. A trend that depends on a row at chance (its top-1 interval, bootstrap over the val
samples, reaches 1 / num_classes) is "not testable (rows X at chance)":
a row that never learned has nothing to lose or gain, so no difference to it says anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.store.predictions import predictions_path
from ablations.study.config import MODALITIES, list_rows
from analysis.collect import no_recipe
from analysis.differences import compare, correct_by_seed, interval_text
from analysis.stats import LEVEL, N_BOOT, SEED, holm
from analysis.tables import fmt, mae_runs, stat, supervised_runs

HOLDS, FAILS, UNKNOWN, NOT_TESTABLE = "holds", "does not hold", "not known yet", "not testable"
INTRO = (
    "# Do the paper's trends hold here?\n\nRuns: `{variant}`. Δ top-1 in percentage points, B minus A, "
    "with a paired bootstrap 95% interval over the validation samples, widened by the between-seed "
    "spread when both sides have several seeds (analysis/stats.py); **n.d.** = the interval contains 0. "
    "A drop is *significant* when its whole interval is below 0 and it survives Holm's adjustment "
    "over the trends' comparisons of the modality (8 at most; (Holm: yes / n.d.) after each). "
    "(1) holds when no adjacent "
    "difference between rows a-f (b - a, ..., f - e) and not f - a is a significant drop; (2) holds "
    "when supervised f - supervised mvitv2 is a significant drop; (3) holds when MAE f - supervised "
    "f is significantly above 0. A trend is *not testable* when a row it depends on is at chance (its "
    "top-1 interval reaches 1 / number of classes). With one seed the intervals cover sample noise only.\n"
)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the runs of Table 1's row `row` in `mode` (mae, supervised)."""

    row: str
    mode: str
    runs: pd.DataFrame = field(compare=False)

    @property
    def label(self) -> str:
        return f"{'MAE' if self.mode == 'mae' else 'supervised'} {self.row}"

    def missing(self, runs_dir: Path) -> str | None:
        """What keeps this side out of a comparison, or None."""
        if self.runs.empty:
            return "no finished run"
        paths = [predictions_path(runs_dir / str(r.folder), str(r.mode)) for r in self.runs.itertuples()]
        return None if any(p.exists() for p in paths) else "finished without predictions.npz"

    def text(self) -> str:
        if self.runs.empty:
            return f"{self.label}: no run"
        acc, sd, n = stat(self.runs, "top1")
        return f"{self.label}: {fmt(acc, sd, n)}% ({n} seed{'s' * (n != 1)})"


def sides(df: pd.DataFrame, m: str, variant: str, mode: str, *rows: str) -> list[Side]:
    pick = mae_runs if mode == "mae" else supervised_runs
    return [Side(r, mode, pick(df, r, m, variant)) for r in rows]


def diff(runs_dir: Path, a: Side, b: Side, m: str, adjusted: dict | None = None) -> dict:
    """One differences record (analysis.differences.COLUMNS) of b minus a, plus "missing": the
    sides that lack runs or predictions, as (side, why), and "adjusted": its Holm verdict in the
    trends' family (adjusted: {comparison: verdict}, from family_verdicts)."""
    rec = compare(runs_dir, a.runs, b.runs, f"{b.label} - {a.label}", m)
    rec["missing"] = [(s, why) for s in (a, b) if (why := s.missing(runs_dir))]
    if adjusted is not None:
        rec["adjusted"] = adjusted.get(rec["comparison"], False)
    return rec


def family_pairs(df: pd.DataFrame, m: str, variant: str) -> list[tuple[Side, Side]]:
    """Every comparison the three trends make, (a, b) for b minus a: the trends' family."""
    mae = sides(df, m, variant, "mae", *list_rows()[1:])
    sup = sides(df, m, variant, "supervised", "mvitv2", "f")
    return [*zip(mae, mae[1:]), (mae[0], mae[-1]), (sup[0], sup[1]), (sup[1], mae[-1])]


def family_verdicts(runs_dir: Path, df: pd.DataFrame, m: str, variant: str) -> dict[str, bool]:
    """{comparison: distinguishable after Holm over the trends' comparisons that have numbers}."""
    recs = [
        compare(runs_dir, a.runs, b.runs, f"{b.label} - {a.label}", m)
        for a, b in family_pairs(df, m, variant)
    ]
    return dict(zip([r["comparison"] for r in recs], holm([r["p"] for r in recs])))


def accuracy_interval(runs_dir: Path, side: Side) -> tuple[float, float, float, float] | None:
    """(top-1, low, high, chance) in percent for a side with predictions, else None. The interval
    is over the val samples only (bootstrap as in analysis/stats.py, seeds pooled per sample): it
    asks whether these runs left chance, not how reproducible their accuracy is (a row at 30% and
    70% in two seeds learned in both). Chance is 100 / the number of classes in the labels."""
    by_seed = correct_by_seed(runs_dir, side.runs)
    if not by_seed or len({c.shape for c, _ in by_seed.values()}) != 1:
        return None
    right = np.stack([c for c, _ in by_seed.values()]).mean(0)  # (N,) fraction of seeds right
    chance = 100.0 / len(np.unique(np.concatenate([lab for _, lab in by_seed.values()])))
    values, counts = np.unique(right, return_counts=True)
    draws = np.random.default_rng(SEED).multinomial(len(right), counts / len(right), size=N_BOOT)
    reps = 100.0 * (draws @ values) / len(right)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(reps, [tail, 100 - tail])
    return 100.0 * float(right.mean()), float(low), float(high), chance


def at_chance(acc: tuple[float, float, float, float]) -> bool:
    """An accuracy_interval at chance: its low bound does not clear 1 / classes."""
    return acc[1] <= acc[3]


CHANCE_COLUMNS = ["modality", "mode", "row", "seeds", "top1", "low", "high", "chance", "above_chance"]


def chance_frame(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """chance.csv: each Table 1 (MAE) and Fig. 8 (supervised) row with predictions, its top-1 with
    the 95% interval over the val samples (accuracy_interval: seeds pooled per sample) and whether
    that interval lies above chance, the test the trends' "at chance" verdicts use."""
    lines = []
    for m in MODALITIES:
        for mode, rows in (("mae", list_rows()[1:]), ("supervised", list_rows())):
            for s in sides(df, m, variant, mode, *rows):
                acc = accuracy_interval(runs_dir, s)
                if acc is not None:
                    values = (m, mode, s.row, len(s.runs), *acc, not at_chance(acc))
                    lines.append(dict(zip(CHANCE_COLUMNS, values)))
    return pd.DataFrame(lines, columns=CHANCE_COLUMNS)


def chance_check(runs_dir: Path, deps: list[Side]) -> tuple[str, list[str]] | None:
    """(verdict "not testable (rows X at chance)", lines) when any side the trend depends on is at
    chance (its interval reaches chance from above or lies below it), else None."""
    at = []
    for s in deps:
        acc = accuracy_interval(runs_dir, s)
        if acc is not None and at_chance(acc):
            at.append((s, acc))
    if not at:
        return None
    chance = at[0][1][3]
    names = ", ".join(s.label for s, _ in at)
    lines = [
        f"- at chance ({chance:.1f}% = 1 / classes inside or above the row's 95% interval): "
        + "; ".join(f"{s.label} {a:.1f}% [{lo:.1f}, {hi:.1f}]" for s, (a, lo, hi, _) in at)
    ]
    return f"{NOT_TESTABLE} (rows {names} at chance)", lines


def untestable(runs_dir: Path, deps: list[Side], verdict: str, key: str, lines: list[str], missing: list,
               recs: list[dict]):  # fmt: skip
    """The trend's result (verdict, key, lines, missing, its comparisons' records), or "not
    testable" with the same numbers when a row it needs is at chance."""
    chance = chance_check(runs_dir, deps)
    if chance is None:
        return verdict, key, lines, missing, recs
    return chance[0], key, chance[1] + lines, missing, recs


def known(rec: dict) -> bool:
    return not math.isnan(rec["diff"])


def seeds_text(rec: dict) -> str:
    n = int(rec["seeds"])
    if not known(rec):  # compare() warned if the seeds it paired saw different validation samples
        return f"{rec['comparison']}: – ({'runs missing' if n == 0 else 'validated on different samples'})"
    return f"{rec['comparison']}: {interval_text(rec)} ({n} seed{'s' * (n != 1)})"


def mae_keeps(runs_dir: Path, df: pd.DataFrame, m: str, variant: str, adjusted: dict | None = None
              ) -> tuple[str, str, list[str], list, list[dict]]:  # fmt: skip
    """Trend (1): (verdict, its key difference, lines of text, missing (side, why), records)."""
    adj = family_verdicts(runs_dir, df, m, variant) if adjusted is None else adjusted
    mae = sides(df, m, variant, "mae", *list_rows()[1:])  # a..f: mvitv2 has no MAE run
    recs = [diff(runs_dir, p, c, m, adj) for p, c in zip(mae, mae[1:])] + [
        diff(runs_dir, mae[0], mae[-1], m, adj)
    ]
    lines = [f"- {seeds_text(r)}" for r in recs]
    steps = [r for r in recs[:-1] if known(r)]
    if steps:
        worst = min(steps, key=lambda r: r["diff"])
        what = (
            "largest drop between adjacent rows"
            if worst["diff"] < 0
            else "no row below the one before; smallest step"
        )
        lines.append(f"- {what}: {seeds_text(worst)}")
        low = min(r["low"] for r in recs if known(r))
        if low < 0:
            lines.append(f"- lowest 95% bound: {low:+.1f} points (drops up to that size are not ruled out)")
    raw = [r for r in recs if known(r) and r["high"] < 0]
    drops = [r for r in raw if r["adjusted"]]
    if drops:
        lines.append("- significant drops (after Holm): " + ", ".join(r["comparison"] for r in drops))
    if len(raw) > len(drops):
        lines.append("- drops whose interval is below 0 but that do not survive the family: "
                     + ", ".join(r["comparison"] for r in raw if not r["adjusted"]))  # fmt: skip
    verdict = FAILS if drops else HOLDS if all(known(r) for r in recs) else UNKNOWN
    key = "; ".join(seeds_text(r) for r in drops) if drops else seeds_text(recs[-1])
    return untestable(runs_dir, mae, verdict, key, lines, [x for r in recs for x in r["missing"]], recs)


def supervised_loses(
    runs_dir: Path, df: pd.DataFrame, m: str, variant: str, adjusted: dict | None = None
) -> tuple[str, str, list[str], list, list[dict]]:
    """Trend (2): (verdict, its key difference, lines of text, missing (side, why), records)."""
    adj = family_verdicts(runs_dir, df, m, variant) if adjusted is None else adjusted
    a, b = sides(df, m, variant, "supervised", "mvitv2", "f")
    rec = diff(runs_dir, a, b, m, adj)
    lines = [f"- {a.text()}; {b.text()}", f"- {seeds_text(rec)}"]
    if not known(rec):
        return untestable(runs_dir, [a, b], UNKNOWN, seeds_text(rec), lines, rec["missing"], [rec])
    if rec["low"] > 0 and rec["adjusted"]:
        lines.append("- reversed: supervised f is significantly better than supervised mvitv2")
    verdict = HOLDS if rec["high"] < 0 and rec["adjusted"] else FAILS
    return untestable(runs_dir, [a, b], verdict, seeds_text(rec), lines, rec["missing"], [rec])


def mae_beats_supervised(
    runs_dir: Path, df: pd.DataFrame, m: str, variant: str, adjusted: dict | None = None
) -> tuple[str, str, list[str], list, list[dict]]:
    """Trend (3): (verdict, its key difference, lines of text, missing (side, why), records)."""
    adj = family_verdicts(runs_dir, df, m, variant) if adjusted is None else adjusted
    (a,), (b,) = sides(df, m, variant, "supervised", "f"), sides(df, m, variant, "mae", "f")
    rec = diff(runs_dir, a, b, m, adj)
    lines = [f"- {b.text()}; {a.text()}", f"- {seeds_text(rec)}"]
    if not known(rec):
        return untestable(runs_dir, [a, b], UNKNOWN, seeds_text(rec), lines, rec["missing"], [rec])
    sure = rec["adjusted"]
    winner = (
        "MAE wins"
        if rec["low"] > 0 and sure
        else "supervised wins"
        if rec["high"] < 0 and sure
        else ("not distinguishable" + (" after Holm" if rec["distinguishable"] else ""))
    )
    lines.append(f"- {winner}")
    verdict = HOLDS if rec["low"] > 0 and sure else FAILS
    return untestable(runs_dir, [a, b], verdict, seeds_text(rec), lines, rec["missing"], [rec])


TRENDS = (
    ("(1) MAE keeps accuracy across rows a-f", mae_keeps),
    ("(2) supervised from scratch loses accuracy from mvitv2 to f", supervised_loses),
    ("(3) MAE-pretrained f beats supervised f", mae_beats_supervised),
)


def table_runs(df: pd.DataFrame, m: str, variant: str) -> pd.DataFrame:
    return df[(df["variant"] == variant) & (df["modality"] == m) & df["table"].isin(["table1", "fig8"])]


def commands(df: pd.DataFrame, m: str, variant: str, missing: list) -> list[str]:
    """ablate.py commands that train what `missing` [(Side, why)] names: Table 1 / Fig. 8 for
    missing runs (finished ones are skipped), --step ... --force to retrain runs without predictions."""
    preset = df.loc[df["variant"] == variant, "preset"].iloc[0]
    seeds = max(1, table_runs(df, m, variant)["seed"].nunique())
    tail = f" --preset {preset} --modality {m} --seeds {seeds}"
    if variant != preset:
        tail += f" --set ... (the overrides that made variant {variant})"
    out = []
    for mode, table in (("mae", "--table 1"), ("supervised", "--fig 8")):
        if any(s.mode == mode and s.runs.empty for s, _ in missing):
            out.append(f"python ablate.py {table}{tail}")
    for s, _ in missing:
        if not s.runs.empty:
            mode = " --mode supervised" if s.mode == "supervised" and s.row != "mvitv2" else ""
            out.append(f"python ablate.py --step {s.row}{mode} --force{tail}")
    return list(dict.fromkeys(out))


def assess(df: pd.DataFrame, runs_dir: Path, variant: str) -> dict[str, list[tuple] | None]:
    """{modality: [(title, verdict, key, lines, missing, records) per trend in TRENDS]}, None for a
    modality without Table 1 or Fig. 8 runs. One pass: trends.md and trends.csv both read it."""
    out = {}
    for m in MODALITIES:
        if table_runs(df, m, variant).empty:
            out[m] = None
            continue
        adjusted = family_verdicts(Path(runs_dir), df, m, variant)
        out[m] = [(title, *trend(Path(runs_dir), df, m, variant, adjusted)) for title, trend in TRENDS]
    return out


def trends_markdown(df: pd.DataFrame, runs_dir: Path, variant: str, assessed: dict | None = None) -> str:
    """trends.md of one variant: per modality, each trend's verdict with its numbers, and the runs
    that are missing with the commands that make them."""
    assessed = assess(df, runs_dir, variant) if assessed is None else assessed
    text = [INTRO.format(variant=variant)]
    for m in MODALITIES:
        text.append(f"\n## {m}\n")
        if assessed.get(m) is None:
            if m in no_recipe(df, variant):
                preset = df.loc[df["variant"] == variant, "preset"].iloc[0]
                text.append(f"\nNo {m} runs: preset {preset!r} has no {m} recipe.\n")
                continue
            none = sides(df, m, variant, "mae", "f") + sides(df, m, variant, "supervised", "f")
            cmds = commands(df, m, variant, [(s, "no finished run") for s in none])
            text.append(
                "\nNo Table 1 or Fig. 8 runs.\n\nTrain them with:\n\n" + "".join(f"    {c}\n" for c in cmds)
            )
            continue
        missing = []
        for title, verdict, key, lines, lacking, _ in assessed[m]:
            text.append(f"\n**{title}: {verdict}.** {key}\n\n" + "\n".join(lines) + "\n")
            for x in lacking:
                if x[0] not in [s for s, _ in missing]:
                    missing.append(x)
        if missing:
            named = "; ".join(f"{s.label} ({why})" for s, why in missing)
            cmds = "".join(f"    {c}\n" for c in commands(df, m, variant, missing))
            text.append(f"\nMissing: {named}. Train them with:\n\n{cmds}")
    return "".join(text)


FRAME_COLUMNS = ["trend", "modality", "verdict", "comparison", "diff", "low", "high", "seeds",
                 "distinguishable", "adjusted", "p"]  # fmt: skip


def trends_frame(assessed: dict) -> pd.DataFrame:
    """trends.csv: one line per comparison of each trend (FRAME_COLUMNS): the trend's number (1-3),
    its verdict, the comparison ("MAE f - MAE a"), its difference and 95% interval in points, the
    seeds paired, whether the raw interval excludes 0 and whether that survives Holm over the
    trends' family ("adjusted"); a modality without runs has no lines."""
    lines = []
    for m, results in assessed.items():
        for number, (_, verdict, _, _, _, recs) in enumerate(results or [], 1):
            for rec in recs:
                lines.append({"trend": number, "modality": m, "verdict": verdict} | {
                    k: rec.get(k, math.nan) for k in FRAME_COLUMNS[3:]})  # fmt: skip
    return pd.DataFrame(lines, columns=FRAME_COLUMNS)


def verdicts(text: str) -> str:
    """The headline of trends.md: per modality its three verdicts (or that it has no runs)."""
    body, _, builds = text.partition("\n## Builds\n")
    keep = [ln.replace("**", "") for ln in body.splitlines() if ln.startswith(("## ", "**(", "No "))]
    out = [f"  {ln}" if not ln.startswith("## ") else ln[3:] + ":" for ln in keep]
    mark = next((ln.replace("**", "") for ln in builds.splitlines() if ln.strip()), "")
    return "\n".join(out + ([f"Builds: {mark}"] if mark else [])) + "\n"
