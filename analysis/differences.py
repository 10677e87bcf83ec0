"""Accuracy differences with paired bootstrap 95% intervals (method: analysis/stats.py), from the
runs' per-sample validation predictions (<phase>/predictions.npz): each adjacent pair of Table 1
rows (later minus earlier), for Fig. 8 MAE minus supervised on the same row, and for Table 3
each entry minus its sub-table's default. Each table's comparisons of one modality are a family:
family() adds the Holm-adjusted verdict and what each comparison resolves (minimum detectable
effect, seeds needed for a target effect, the interval's sample and seed parts)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.store.predictions import DamagedPredictions, correct, load_predictions, predictions_path
from ablations.study.config import MODALITIES, list_rows
from analysis import stats
from analysis.collect import say_damaged
from analysis.provenance import mark
from analysis.stats import paired_difference
from analysis.tables import mae_runs, markdown, select, supervised_runs, table3_entries, table3_runs

COLUMNS = ["comparison", "modality", "diff", "low", "high", "seeds", "samples", "distinguishable",
           "p", "se_sample", "se_seed", "builds", "epoch_samples", "epoch_sample_half"]  # fmt: skip
# family(): the Holm verdict over the family, its size, and the resolution of each comparison
FAMILY_COLUMNS = ["adjusted", "family", "mde", "target", "seeds_needed", "floor", "sample_half", "seed_half"]


def correct_by_seed(runs_dir: Path, runs: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (correct@1 (N,) bool, labels (N,))} of the runs whose predictions file exists and
    reads; a damaged one is said once and left out (the other runs are still compared)."""
    out = {}
    for r in runs.itertuples():
        path = predictions_path(Path(runs_dir) / str(r.folder), str(r.mode))
        if path.exists():
            try:
                pred = load_predictions(path)
            except DamagedPredictions as e:
                say_damaged(str(e), f"this run is left out of the differences; redo it with --force on that "
                            f"run: the command that trained it with --only {r.name} --force")  # fmt: skip
                continue
            out[int(r.seed)] = (correct(pred, 1), pred["label"])
    return out


def compare(runs_dir: Path, a: pd.DataFrame, b: pd.DataFrame, label: str, modality: str) -> dict:
    """One record of COLUMNS: b minus a over the seeds both have predictions for (NaN if none)."""
    ca, cb = correct_by_seed(runs_dir, a), correct_by_seed(runs_dir, b)
    seeds = sorted(set(ca) & set(cb))
    rec = dict.fromkeys(COLUMNS, math.nan) | {"comparison": label, "modality": modality, "seeds": len(seeds)}
    rec["builds"] = builds_of([a, b])
    labels = [ca[s][1] for s in seeds] + [cb[s][1] for s in seeds]
    if not seeds:
        return rec
    if any(lab.shape != labels[0].shape or (lab != labels[0]).any() for lab in labels):
        warnings.warn(
            f"{label} ({modality}): runs were validated on different samples; no interval", stacklevel=2
        )
        return rec
    d = paired_difference(np.stack([ca[s][0] for s in seeds]), np.stack([cb[s][0] for s in seeds]))
    rec |= {
        "diff": d.diff,
        "low": d.low,
        "high": d.high,
        "samples": d.n,
        "distinguishable": d.distinguishable,
        "p": d.p,
        "se_sample": d.se_sample,
        "se_seed": d.se_seed,
    }
    small = epoch_val_size(a)
    if small and small < d.n:  # the final set starts with the per-epoch items: its sample part there
        e = paired_difference(
            np.stack([ca[s][0][:small] for s in seeds]), np.stack([cb[s][0][:small] for s in seeds])
        )
        rec |= {
            "epoch_samples": small,
            "epoch_sample_half": stats.half_widths(e.se_sample, e.se_seed, e.seeds)[0],
        }
    return rec


def epoch_val_size(runs: pd.DataFrame) -> int | None:
    """data.val_size of runs evaluated on a larger final set (data.final_val_size), else None."""
    if "config" not in runs.columns or runs.empty:
        return None
    data = (runs["config"].iloc[0] or {}).get("data") or {}
    final, small = data.get("final_val_size"), data.get("val_size")
    return int(small) if final and small and final > small else None


def builds_of(frames: list[pd.DataFrame]) -> str:
    """The build labels of the runs (' + '-joined, sorted; '' when the frames have none)."""
    labels = {x for f in frames if "build" in f.columns for x in f["build"].dropna()}
    return " + ".join(sorted(labels))


def family(frame: pd.DataFrame, targets=None, by: str | list[str] = "modality") -> pd.DataFrame:
    """frame (records with COLUMNS) with FAMILY_COLUMNS added: per group of `by` (a family: one
    table's comparisons of one modality), Holm's verdict over the comparisons that have numbers,
    the family's size m, and per comparison its MDE (80% power at level 0.05 / m), the seeds its
    target effect needs (targets: points per row, NaN: none), the MDE with infinitely many seeds
    (the validation set's floor) and the 95% half-width of each noise source (analysis/stats.py)."""
    out = frame.copy()
    out["target"] = np.nan if targets is None else np.asarray(targets, dtype=float)
    for col in FAMILY_COLUMNS:
        if col != "target":
            out[col] = np.nan
    out["adjusted"] = False
    if out.empty:
        return out
    for _, idx in out.groupby(by, sort=False).groups.items():
        part = out.loc[idx]
        known = part["p"].notna()
        m = int(known.sum())
        out.loc[idx, "adjusted"] = stats.holm(part["p"].to_numpy(float))
        out.loc[idx, "family"] = m
        for i, r in part[known].iterrows():
            k = int(r["seeds"])
            ss, sd = float(r["se_sample"]), float(r["se_seed"])
            out.loc[i, "mde"] = stats.mde(ss, sd, k, m)
            out.loc[i, "floor"] = stats.sample_floor(ss, m)
            out.loc[i, ["sample_half", "seed_half"]] = stats.half_widths(ss, sd, k)
            need = stats.seeds_needed(ss, sd, k, float(r["target"]), m) if r["target"] > 0 else None
            out.loc[i, "seeds_needed"] = np.nan if need is None else need
    out["adjusted"] = out["adjusted"].astype(bool)
    return out


def paper_steps(frame: pd.DataFrame, paper: dict) -> list[float]:
    """The paper's own effect for each Table 1 comparison "<row> - <previous row>": the absolute
    difference of its top-1 in Table 1 (NaN where the paper has no number)."""
    rows, out = paper["table1"]["rows"], []
    for label, m in zip(frame["comparison"], frame["modality"]):
        cur, _, prev = str(label).partition(" - ")
        a = (rows.get(prev) or {}).get(m, {}).get("acc")
        b = (rows.get(cur) or {}).get(m, {}).get("acc")
        out.append(abs(b - a) if a is not None and b is not None else math.nan)
    return out


def table1_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """Each Table 1 row minus the row before it, per modality."""
    rows = list_rows()
    recs = [
        compare(runs_dir, select(df, "table1", prev, m, variant), select(df, "table1", cur, m, variant),
                f"{cur} - {prev}", m)
        for prev, cur in zip(rows, rows[1:]) for m in MODALITIES
    ]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def fig8_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """MAE minus supervised from scratch, per row (row a on: mvitv2 has no MAE run) and modality."""
    recs = [
        compare(runs_dir, supervised_runs(df, row, m, variant), mae_runs(df, row, m, variant),
                f"{row}: MAE - supervised", m)
        for row in list_rows()[1:] for m in MODALITIES
    ]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def table3_differences(df: pd.DataFrame, runs_dir: Path, variant: str) -> pd.DataFrame:
    """Each Table 3 entry minus its sub-table's default, per modality the entry applies to. The
    default is the preset's own setting, whose runs are Table 1's row f: "<group>: <value> - <default>",
    "- row f" where no entry equals the preset's setting, "- default" (no numbers) while row f has
    no run (its config decides which entry is the default)."""
    by_group: dict[str, list] = {}
    for name, per_mod in table3_entries().items():
        by_group.setdefault(name.split("-", 1)[0], []).append((name, per_mod))
    recs = []
    for group, entries in by_group.items():
        for m in MODALITIES:
            f_runs = select(df, "table1", "f", m, variant)
            cells = [(name.split("-", 1)[1], *table3_runs(df, name, per_mod[m], m, variant))
                     for name, per_mod in entries if m in per_mod]  # fmt: skip
            ref = next(
                (value for value, _, is_default in cells if is_default), "row f" if len(f_runs) else "default"
            )
            recs += [compare(runs_dir, f_runs, runs, f"{group}: {value} - {ref}", m)
                     for value, runs, is_default in cells if not is_default]  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS)


def interval_text(rec) -> str:
    """'+3.1 [+0.4, +5.9]' with its verdicts: 'n.d.' (the raw interval contains 0); after a
    distinguishable raw interval, '(Holm: yes)' or '(Holm: n.d.)' when the family is known."""
    if math.isnan(rec["diff"]):
        return "–"
    text = f"{rec['diff']:+.1f} [{rec['low']:+.1f}, {rec['high']:+.1f}]"
    if not rec["distinguishable"]:
        return f"{text} n.d."
    adjusted = rec.get("adjusted") if hasattr(rec, "get") else None
    if adjusted is None or (isinstance(adjusted, float) and math.isnan(adjusted)):
        return text
    return f"{text} (Holm: {'yes' if adjusted else 'n.d.'})"


def resolution_text(rec) -> list[str]:
    """Cells of one comparison's resolution: Holm (family m), MDE, target, seeds needed, noise."""
    if math.isnan(rec["diff"]):
        return ["–"] * 6
    holm = f"{'distinguishable' if rec['adjusted'] else 'n.d.'} (m={int(rec['family'])})"
    target, need = rec["target"], rec["seeds_needed"]
    if not target > 0:
        seeds = "– (no target: --resolve)" if math.isnan(target) else "– (target 0)"
    elif int(rec["seeds"]) < 2:
        seeds = "unknown (one seed: no spread)"
    elif not math.isnan(need):
        seeds = f"{int(need)}" + (" (already)" if need <= rec["seeds"] else "")
    elif rec["floor"] > target:
        seeds = f"never: the val set alone allows {rec['floor']:.1f}"
    else:
        seeds = f"> {stats.SEED_CAP}"
    epoch = rec.get("epoch_samples")
    was = f" (±{rec['epoch_sample_half']:.1f} on the first {int(epoch)})" if epoch and epoch == epoch else ""
    noise = f"±{rec['sample_half']:.1f} sample{was}, " + (
        f"±{rec['seed_half']:.1f} seed" if int(rec["seeds"]) > 1 else "seed not measured"
    )
    builds = rec.get("builds") if isinstance(rec.get("builds"), str) else ""
    provenance = mark(builds.split(" + ")) if builds else ""
    # an MDE beyond 100 points (few seeds, Holm's small alpha) is no effect accuracy can have
    mde = "> 100" if rec["mde"] > 100 else f"{rec['mde']:.1f}"
    return [holm, mde, "–" if math.isnan(target) else f"{target:.1f}", seeds, noise,
            provenance or "one build"]  # fmt: skip


def resolution_markdown(frame: pd.DataFrame) -> str:
    """One line per comparison and modality with numbers: the family verdict and the resolution."""
    lines = [[r["comparison"], r["modality"], interval_text(r), *resolution_text(r)]
             for _, r in frame.iterrows() if not math.isnan(r["diff"])]  # fmt: skip
    if not lines:
        return ""
    head = ["comparison", "modality", "Δ [95% CI]", "Holm (family of m)", "MDE (80%)", "target",
            "seeds for target", "95% half-width: sample, seed", "builds"]  # fmt: skip
    return RESOLUTION_NOTE + "\n" + markdown(head, lines)


def differences_markdown(frame: pd.DataFrame) -> str:
    """One line per comparison, one column per modality; 'n.d.' = the interval contains 0."""
    md = []
    for label, group in frame.groupby("comparison", sort=False):
        by_mod = group.set_index("modality")
        cells = [label]
        for m in MODALITIES:
            if m not in by_mod.index:  # a Table 3 entry of the other modality only
                cells += ["n/a", "n/a"]
                continue
            rec = by_mod.loc[m]
            cells += [interval_text(rec), "–" if rec["seeds"] == 0 else str(int(rec["seeds"]))]
        md.append(cells)
    head = ["comparison", "image Δ top-1 [95% CI]", "seeds", "video Δ top-1 [95% CI]", "seeds"]
    return markdown(head, md) + (resolution_markdown(frame) if "adjusted" in frame.columns else "")


RESOLUTION_NOTE = (
    "\n**What these seeds resolve.** Holm: the verdict adjusted over the family (this table's "
    "comparisons of one modality, m of them): at most a 5% chance that any null comparison of the "
    "family is called distinguishable. MDE: the true difference (points) this many seeds and this "
    "validation set detect with 80% power at Holm's strictest level (0.05 / m). Seeds for target: "
    "the seeds (same per-seed spread) whose MDE reaches the target effect (the paper's own step "
    "for Table 1; `--resolve POINTS` sets one); *never* when the validation set's sample noise "
    "alone keeps the MDE above it (a larger validation set helps, not seeds). Half-width: the "
    "interval's part from which validation samples were drawn (sample) and from training noise "
    "(seed); buy down the larger one. Where the finished models were evaluated on a larger set than "
    "the per-epoch one (data.final_val_size), the sample part on the per-epoch items alone (the larger "
    "set's first items) is in brackets. Method: analysis/stats.py.\n"
)
NOTE = (
    "Δ top-1 in percentage points with a paired bootstrap 95% interval over the validation samples "
    "(same samples for both runs), widened by the between-seed spread when both have several seeds "
    "(method: analysis/stats.py). **n.d.** = not distinguishable: the interval contains 0; "
    "(Holm: yes / n.d.) = whether a distinguishable interval survives the family. With one "
    "seed the interval covers sample noise only, not training noise. – = a side has no finished run "
    "with predictions.npz (runs finished before it existed: retrain them with --force).\n"
)
TABLE3_NOTE = (
    "Default = the entry equal to the preset's own setting (its runs are Table 1's row f; marked * "
    "above); `- default` without a value: row f has no run yet, so which entry is the default is "
    "not known (python ablate.py --step f); `- row f`: no entry equals the preset's setting. n/a = "
    "no such comparison in this modality (the entry does not apply to it, or its default is another "
    "value).\n"
)
