"""The Table 3 figure: one small panel per sub-table (multi-scale, mask ratio, target, drop path,
decoder depth, pretraining epochs) and modality, ours beside the paper's, defaults marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ablations.study.config import load_table
from analysis.plots import MODS, OURS, PAPER, _empty, save

COLS = 3
CAPTION = (
    "Left axis (blue): ours, top-1 % (mean ± std over seeds where there are several). Right axis "
    "(grey): the paper's, Hiera-L, IN1K / K400, on its own scale (ours are small CPU-scale runs, "
    "far below ~85%: compare the shapes, not the levels). Each axis has one range for all panels of a "
    "modality, so a step's size compares across panels. Shaded column, star and dotted line: our "
    "default (the preset's setting = Table 1's row f); open grey star: the paper's default."
)


def shown_modalities(t3: pd.DataFrame) -> list[str]:
    """Image always (the paper's numbers at least); video only where video runs exist."""
    return [m for m in MODS if m == "image" or t3[f"{m}_top1"].notna().any()]


def limits(values: np.ndarray, min_span: float) -> tuple[float, float] | None:
    """A y-range holding every finite value, at least min_span wide (small steps stay small)."""
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = values.min(), values.max()
    pad = max(0.08 * (hi - lo), (min_span - (hi - lo)) / 2)
    return lo - pad, hi + pad


def panel(ax, part: pd.DataFrame, m: str, ylims: tuple, legend: bool) -> None:
    """One sub-table in one modality: x = its values in table3.yaml's order; ylims: (ours, paper)
    y-ranges shared by the modality's panels."""
    x = np.arange(len(part))
    ours, paper = part[f"{m}_top1"].to_numpy(), part[f"{m}_paper_top1"].to_numpy()
    std = np.where(part[f"{m}_seeds"] > 1, part[f"{m}_top1_std"], 0.0)
    default = part[f"{m}_default"].astype(bool).to_numpy()
    if np.isfinite(ours).any():
        ax.errorbar(x, ours, yerr=std, marker="o", color=OURS, capsize=3, label="ours")
    else:
        _empty(ax, m, kind=" Table 3")
    for i in np.flatnonzero(default):
        ax.axvspan(i - 0.4, i + 0.4, color=OURS, alpha=0.12, lw=0)
        ax.axhline(ours[i], color=OURS, ls=":", lw=0.8)
        ax.plot(i, ours[i], "*", ms=13, color=OURS, label="ours default (row f)")
    twin = ax.twinx()
    twin.plot(x, paper, marker="s", ls="--", color=PAPER, label="paper (L)")
    pdef = part[f"{m}_paper_default"].astype(bool).to_numpy()
    twin.plot(x[pdef], paper[pdef], "*", ms=14, mfc="white", color=PAPER, label="paper default")
    ax.set_xticks(x, part["value"])
    ax.set_xlim(-0.5, len(part) - 0.5)
    for a, lim in zip((ax, twin), ylims):
        if lim is not None:
            a.set_ylim(*lim)
    ax.set_ylabel("ours: top-1 (%)", color=OURS, fontsize=8)
    twin.set_ylabel("paper: top-1 (%)", color=PAPER, fontsize=8)
    if legend:
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)


def table3_figure(t3: pd.DataFrame, title: str) -> plt.Figure:
    """t3: analysis.tables.table3's frame. One row of panels per COLS sub-tables and modality."""
    groups = load_table("table3")["groups"]
    mods = shown_modalities(t3)
    per_mod = -(-len(groups) // COLS)
    fig, axes = plt.subplots(per_mod * len(mods), COLS, figsize=(4 * COLS, 3.2 * per_mod * len(mods)),
                             squeeze=False)  # fmt: skip
    for k, m in enumerate(mods):
        rows = t3[t3[f"{m}_applies"].astype(bool)]
        std = np.where(rows[f"{m}_seeds"] > 1, rows[f"{m}_top1_std"], 0.0)
        ours = np.concatenate([rows[f"{m}_top1"] - std, rows[f"{m}_top1"] + std])
        ylims = (limits(ours, 2.0), limits(rows[f"{m}_paper_top1"].to_numpy(), 1.0))
        for j, (group, spec) in enumerate(groups.items()):
            ax = axes[k * per_mod + j // COLS, j % COLS]
            part = t3[(t3["group"] == group) & t3[f"{m}_applies"].astype(bool)].reset_index(drop=True)
            panel(ax, part, m, ylims, legend=k == 0 and j == 0)
            ax.set_title(f"{spec['title']}, {m}", fontsize=10)
        for j in range(len(groups), per_mod * COLS):
            axes[k * per_mod + j // COLS, j % COLS].set_visible(False)
    fig.suptitle(title)
    fig.text(0.5, 0.0, CAPTION, ha="center", va="top", wrap=True, fontsize=8)
    fig.tight_layout()
    return fig


def table3(t3: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """Saves table3.png / table3.pdf in out."""
    return save(table3_figure(t3, title), out, "table3")
