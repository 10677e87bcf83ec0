"""Paper-style figures from the tables of analysis.tables (PNG + PDF, Agg backend). A figure has a
panel only for the modalities with results (with_results)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ablations.store.atomic import atomic_path  # noqa: E402
from analysis.tables import UNITS  # noqa: E402

OURS, PAPER, SUP = "#1f77b4", "#7f7f7f", "#d62728"
MODS = ("image", "video")


def save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path, meta in zip(paths, ({"Software": None}, {"CreationDate": None})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=200, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return paths


def with_results(has: dict[str, bool]) -> tuple[str, ...]:
    """The modalities a figure has a panel for: those with results ({modality: has results}),
    or every one while none has (each empty panel then says why)."""
    return tuple(m for m in MODS if has.get(m)) or MODS


def panels(mods: tuple[str, ...], width: float = 5.0, height: float = 3.6, rows: int = 1):
    """(fig, axes): one column per modality of `mods` (`rows` rows), axes[row][col]."""
    fig, axes = plt.subplots(rows, len(mods), figsize=(width * len(mods), height * rows), squeeze=False)
    return fig, axes


def _empty(ax, m: str, no_recipe: tuple[str, ...] = (), kind: str = "") -> None:
    """An empty panel says why: no (kind of) runs yet, or a modality the preset has no recipe for."""
    text = f"no {m} recipe in this preset" if m in no_recipe else f"no {m}{kind} runs yet"
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=PAPER)


def table1_accuracy(t1: pd.DataFrame, out: Path, title: str, no_recipe: tuple[str, ...] = ()) -> list[Path]:
    """Top-1 per row, ours (left axis) and the paper's (right axis: different scale and data)."""
    mods = with_results({m: t1[f"{m}_top1"].notna().any() for m in MODS})
    fig, axes = panels(mods)
    x = np.arange(len(t1))
    for ax, m in zip(axes[0], mods):
        ax.set_title(f"{m} ({'IN1K' if m == 'image' else 'K400'} in the paper)")
        ax.set_xticks(x, t1["row"])
        ax.set_xlabel("Table 1 row (cumulative changes)")
        ax.set_ylabel("ours: top-1 (%)", color=OURS)
        if t1[f"{m}_top1"].notna().any():
            ax.errorbar(x, t1[f"{m}_top1"], yerr=t1[f"{m}_top1_std"].fillna(0), marker="o", color=OURS,
                        capsize=3, label="ours")  # fmt: skip
        else:
            _empty(ax, m, no_recipe)
        twin = ax.twinx()
        twin.plot(x, t1[f"{m}_paper_top1"], marker="s", ls="--", color=PAPER, label="paper (L)")
        twin.set_ylabel("paper: top-1 (%)", color=PAPER)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, "table1_accuracy")


def table1_speed(t1: pd.DataFrame, out: Path, title: str, no_recipe: tuple[str, ...] = ()) -> list[Path]:
    """Throughput relative to the mvitv2 row, ours vs the paper's (ratios are comparable); error
    bars: the min-max of the per-round ratios when the rows were timed side by side."""
    mods = with_results({m: t1[f"{m}_speedup"].notna().any() for m in MODS})
    fig, axes = panels(mods)
    x, w = np.arange(len(t1)), 0.38
    for ax, m in zip(axes[0], mods):
        ours = t1[f"{m}_speedup"].fillna(0)
        spread = np.stack(
            [ours - t1[f"{m}_speedup_low"].fillna(ours), t1[f"{m}_speedup_high"].fillna(ours) - ours]
        )
        side = t1[f"{m}_speed_side_by_side"].any()
        label = "ours (side by side, min-max over rounds)" if side else "ours (each run's own timing)"
        ax.bar(x - w / 2, ours, w, color=OURS, label=label)
        timed = (spread > 0).any(axis=0)  # a row without a min-max (not timed in rounds) gets no bar
        if timed.any():
            ax.errorbar((x - w / 2)[timed], ours[timed], yerr=spread[:, timed], fmt="none", ecolor="black",
                        capsize=3)  # fmt: skip
        ax.bar(x + w / 2, t1[f"{m}_paper_speedup"].fillna(0), w, color=PAPER, label="paper (A100 fp16)")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(x, t1["row"])
        ax.set_xlabel("Table 1 row")
        ax.set_ylabel(f"{UNITS[m]} relative to mvitv2")
        ax.set_title(m)
        if t1[f"{m}_speedup"].isna().all():
            _empty(ax, m, no_recipe)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, "table1_speed")


def fig8(f8: pd.DataFrame, out: Path, title: str, no_recipe: tuple[str, ...] = ()) -> list[Path]:
    """MAE vs supervised from scratch per row (paper Fig. 8: the trend reverses without MAE)."""
    has = {m: f8[[f"{m}_mae_top1", f"{m}_supervised_top1"]].notna().any(axis=None) for m in MODS}
    mods = with_results(has)
    fig, axes = panels(mods)
    x = np.arange(len(f8))
    for ax, m in zip(axes[0], mods):
        any_data = False
        for key, label, color in (
            (f"{m}_mae_top1", "MAE + finetune", OURS),
            (f"{m}_supervised_top1", "supervised from scratch", SUP),
        ):
            if f8[key].notna().any():
                std = f8[key.replace("top1", "std")].fillna(0)
                ax.errorbar(x, f8[key], yerr=std, marker="o", color=color, capsize=3, label=label)
                any_data = True
        if not any_data:
            _empty(ax, m, no_recipe)
        ax.set_xticks(x, f8["row"])
        ax.set_xlabel("Table 1 row (cumulative changes)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(m)
        if any_data:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, "fig8_mae_vs_supervised")


def acc_vs_speed(
    t1: pd.DataFrame, f8: pd.DataFrame, out: Path, title: str, no_recipe: tuple[str, ...] = ()
) -> list[Path]:
    """Fig. 3 style: accuracy against throughput, one point per row; ours and the paper's."""
    mods = with_results({m: (t1[f"{m}_speed"].notna() & t1[f"{m}_top1"].notna()).any() for m in MODS})
    fig, axes = plt.subplots(len(mods), 2, figsize=(10, 3.5 * len(mods)), squeeze=False)
    for r, m in enumerate(mods):
        ours, paper = axes[r]
        speed = t1[f"{m}_speed"]
        series = [("Table 1 (MAE from row a)", t1[f"{m}_top1"], OURS)]
        sup = f8.set_index("row")[f"{m}_supervised_top1"].reindex(t1["row"]).to_numpy()
        series.append(("Fig. 8 (supervised)", pd.Series(sup), SUP))
        any_data = False
        for label, acc, color in series:
            ok = speed.notna().to_numpy() & acc.notna().to_numpy()
            if ok.any():
                any_data = True
                ours.plot(speed[ok], acc[ok], marker="o", color=color, label=label)
                for s, a, name in zip(speed[ok], acc[ok], t1["row"][ok]):
                    ours.annotate(name, (s, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if any_data:
            ours.legend(fontsize=8)
        else:
            _empty(ours, m, no_recipe)
        ours.set_title(f"ours, {m}")
        paper.plot(t1[f"{m}_paper_speed"], t1[f"{m}_paper_top1"], marker="s", color=PAPER, label="paper, L")
        for s, a, name in zip(t1[f"{m}_paper_speed"], t1[f"{m}_paper_top1"], t1["row"]):
            paper.annotate(name, (s, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
        paper.set_title(f"paper (A100 fp16), {m}")
        paper.legend(fontsize=8)
        for ax in (ours, paper):
            ax.set_xlabel(f"throughput ({UNITS[m]})")
            ax.set_ylabel("top-1 (%)")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, "acc_vs_speed")


def differences(
    frame: pd.DataFrame, out: Path, stem: str, title: str, no_recipe: tuple[str, ...] = ()
) -> list[Path]:
    """Accuracy differences with their 95% intervals (analysis.differences), one panel per
    modality; hollow markers where the interval contains 0 (not distinguishable)."""
    mods = with_results({m: frame.loc[frame["modality"] == m, "diff"].notna().any() for m in MODS})
    fig, axes = panels(mods)
    for ax, m in zip(axes[0], mods):
        part = frame[frame["modality"] == m].reset_index(drop=True)
        x = np.arange(len(part))
        ok = part["diff"].notna().to_numpy()
        if ok.any():
            d = part[ok]
            err = np.stack([d["diff"] - d["low"], d["high"] - d["diff"]])
            ax.errorbar(x[ok], d["diff"], yerr=err, fmt="none", ecolor=OURS, capsize=4)
            sure = d["distinguishable"].astype(bool).to_numpy()
            ax.plot(x[ok][sure], d["diff"][sure], "o", color=OURS, label="interval excludes 0")
            ax.plot(x[ok][~sure], d["diff"][~sure], "o", mfc="white", color=OURS, label="contains 0 (n.d.)")
            ax.legend(fontsize=8)
        else:
            _empty(ax, m, no_recipe, " paired")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, part["comparison"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("Δ top-1 (points), 95% CI")
        ax.set_title(m)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, stem)
