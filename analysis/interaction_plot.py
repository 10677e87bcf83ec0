"""The interaction figure: per component, its effect alone, in the cumulative path, and the
difference, with their 95% intervals (analysis/interactions.py); one panel per modality with
results; each component named on the axis, with the Table 1 row that removes it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.interactions import COMPONENTS
from analysis.plots import MODS, OURS, PAPER, SUP, panels, save, with_results

COLORS = {"alone": OURS, "path": PAPER, "difference": SUP}
LABELS = {"alone": "alone", "path": "in the cumulative path", "difference": "alone - path"}


def interactions(frame: pd.DataFrame, out: Path, stem: str, title: str) -> list[Path]:
    mods = with_results({m: frame.loc[frame["modality"] == m, "diff"].notna().any() for m in MODS})
    fig, axes = panels(mods, width=6.5, height=4.2)
    for ax, m in zip(axes[0], mods):
        part = frame[frame["modality"] == m]
        comps = list(dict.fromkeys(part["component"]))
        x = np.arange(len(comps))
        drawn = False
        for k, (measure, color) in enumerate(COLORS.items()):
            d = part[part["measure"] == measure].set_index("component").reindex(comps)
            ok = d["diff"].notna().to_numpy()
            if not ok.any():
                continue
            drawn = True
            xs = x[ok] + (k - 1) * 0.22
            err = np.stack([(d["diff"] - d["low"])[ok], (d["high"] - d["diff"])[ok]])
            ax.errorbar(xs, d["diff"][ok], yerr=err, fmt="o", color=color, capsize=3, label=LABELS[measure])
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(
                0.5, 0.5, f"no {m} runs yet", ha="center", va="center", transform=ax.transAxes, color=PAPER
            )
        ax.axhline(0.0, color="black", lw=0.8)
        names = ["\n".join(textwrap.wrap(COMPONENTS.get(c, c), 12)) for c in comps]
        ax.set_xticks(x, [f"{name}\n(row {c})" for name, c in zip(names, comps)], fontsize=8)
        ax.set_xlabel("component (the Table 1 row that removes it)")
        ax.set_ylabel("effect on top-1 (points), 95% CI")
        ax.set_title(m)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out, stem)
