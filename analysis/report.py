"""Write runs/report/: per variant (preset, or preset+hash of --set overrides) the Markdown and
CSV tables and the plots; an index.md that lists them. Deterministic: no timestamps, fixed order.
Every file is replaced atomically, so two invocations writing the report at once leave whole files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.atomic import write_atomic
from analysis import plots, tables
from analysis.collect import load_runs, paper_numbers

TITLES = {
    "table1": "Table 1: simplifying MViTv2 into Hiera (MAE from row a on)",
    "table3": "Table 3: MAE ablations on row f (Hiera); * = default",
    "fig8": "Fig. 8: MAE vs supervised from scratch, per row",
}


def build_tables(
    df: pd.DataFrame, variant: str, paper: dict | None = None
) -> dict[str, tuple[pd.DataFrame, str]]:
    paper = paper or paper_numbers()
    return {
        "table1": tables.table1(df, variant, paper),
        "table3": tables.table3(df, variant, paper),
        "fig8": tables.fig8(df, variant, paper),
    }


def render(name: str, variant: str, md: str, extra: str = "") -> str:
    note = "Paper: Hiera-L (Table 1, 3), Hiera-B (Fig. 8)."
    return f"# {TITLES[name]}\n\nRuns: `{variant}`. {note}\n\n{md}{extra}"


def write_report(runs_dir, out: Path | None = None) -> Path:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(
            f"{runs_dir} does not exist: nothing to report. Train runs first (python ablate.py --step f), "
            "or pass --runs-dir with the folder that holds them."
        )
    out = Path(out) if out else runs_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    df = load_runs(runs_dir)
    paper = paper_numbers()
    index = ["# Report", "", f"{len(df)} finished runs under `{runs_dir}`.", ""]
    for variant in sorted(df["variant"].dropna().unique()):
        vdir = out / variant
        vdir.mkdir(parents=True, exist_ok=True)
        built = build_tables(df, variant, paper)
        for name, (frame, md) in built.items():
            extra = (
                "\n## Model sizes (ours, one sample)\n\n" + tables.model_sizes(df, variant)
                if name == "table1"
                else ""
            )
            write_atomic(vdir / f"{name}.md", render(name, variant, md, extra))
            csv = frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")
            write_atomic(vdir / f"{name}.csv", csv)
        t1, f8 = built["table1"][0], built["fig8"][0]
        plots.table1_accuracy(t1, vdir, f"Table 1 accuracy per row ({variant})")
        plots.table1_speed(t1, vdir, f"Table 1 speed per row ({variant})")
        plots.fig8(f8, vdir, f"Fig. 8: MAE vs supervised ({variant})")
        plots.acc_vs_speed(t1, f8, vdir, f"Accuracy vs throughput ({variant})")
        index += [f"## {variant}", ""] + [
            f"- [{n}]({variant}/{n}.md) ([csv]({variant}/{n}.csv))" for n in built
        ]
        figures = copy_reconstructions(runs_dir, df[df["variant"] == variant], vdir)
        index += [f"- plots: `{variant}/*.png`, `{variant}/*.pdf`"]
        index += [f"- MAE reconstructions: [{f.stem}]({variant}/{f.name})" for f in figures] + [""]
    write_atomic(out / "index.md", "\n".join(index))
    return out


def copy_reconstructions(runs_dir: Path, runs: pd.DataFrame, vdir: Path) -> list[Path]:
    """Each MAE run's pretrain/reconstructions.png (written when pretraining ends) as
    vdir/reconstructions_<table>_<entry>_<modality>_seed<N>.png; returns the files written."""
    out = []
    for r in runs[runs["mode"] == "mae"].sort_values("name").itertuples():
        src = runs_dir / str(r.name) / "pretrain" / "reconstructions.png"
        if src.exists():
            dst = vdir / f"reconstructions_{r.table}_{r.entry}_{r.modality}_seed{r.seed}.png"
            write_atomic(dst, src.read_bytes())
            out.append(dst)
    return out


def table_text(runs_dir, variant: str, name: str) -> str:
    """The Markdown of one table for one variant (what the CLI prints after a run)."""
    df = load_runs(runs_dir)
    return tables.__dict__[name](df, variant, paper_numbers())[1]
