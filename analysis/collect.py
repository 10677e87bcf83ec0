"""Read every finished run under runs/ into one DataFrame (one row per run folder)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import yaml

from ablations.study import config as C

PAPER_FILE = Path(__file__).parent / "paper_numbers.yaml"
COLUMNS = ["name", "table", "entry", "modality", "variant", "preset", "seed", "mode", "row",
           "top1", "top5", "throughput", "params", "macs", "train_time_s", "config"]  # fmt: skip
# Row mvitv2's model with Hiera's conventions (models.model_stats.model_summary), beside row a.
CONVENTION_COLUMNS = ["params_hiera_conventions", "macs_hiera_conventions"]
# A sweep's runs (--set key=a,b,c): its id and this run's swept values (ablations/study/sweep.py).
SWEEP_COLUMNS = ["sweep_id", "sweep_values"]


def paper_numbers() -> dict:
    return yaml.safe_load(PAPER_FILE.read_text())


def paper_speedup(step: str, modality: str, paper: dict | None = None) -> float:
    """The paper's Table 1 speed of `step` over the mvitv2 row (A100 fp16, size L); nan if the
    paper gives none."""
    rows = (paper or paper_numbers())["table1"]["rows"]
    speed = rows.get(step, {}).get(modality, {}).get("speed")
    return speed / rows["mvitv2"][modality]["speed"] if speed else float("nan")


def load_runs(runs_dir) -> pd.DataFrame:
    """Finished runs (those with metrics.json); unfinished or unreadable folders are left out."""
    records = []
    runs_dir = Path(runs_dir)
    # Run folders sit at <table>/<row>/<modality>/<variant>/seed<k> (ablations.study.runs.run_dir);
    # runs kept deeper (a recipe search's runs/search/<grid>/...) belong to another report.
    for path in sorted(runs_dir.glob("*/*/*/*/seed*/metrics.json")):
        if path.relative_to(runs_dir).parts[0] in ("report", "search"):
            continue
        try:
            m = json.loads(path.read_text())
            cfg = yaml.safe_load((path.parent / "config.yaml").read_text())
        except (OSError, ValueError, yaml.YAMLError) as e:
            warnings.warn(f"skipping {path.parent}: {e}", stacklevel=2)
            continue
        rec = {k: m.get("run", {}).get(k) for k in COLUMNS[:9]}
        rec.update({k: m.get(k) for k in COLUMNS[9:15]})
        rec["config"] = cfg
        rec.update({k: m.get(k) for k in CONVENTION_COLUMNS})
        sweep = m.get("run", {}).get("sweep") or {}
        values = sweep.get("values")  # in the order the keys were given (metrics.json sorts them)
        values = {k: values[k] for k in sweep.get("keys", values)} if values else None
        rec.update(sweep_id=sweep.get("id"), sweep_values=values)
        records.append(rec)
    df = pd.DataFrame(records, columns=COLUMNS + CONVENTION_COLUMNS + SWEEP_COLUMNS)
    for col in COLUMNS[9:15] + CONVENTION_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def no_recipe(df: pd.DataFrame, variant: str) -> tuple[str, ...]:
    """The modalities the variant's preset has no recipe for (laptop: video), so reports can say
    so instead of "no runs yet"."""
    presets = df.loc[df["variant"] == variant, "preset"]
    if presets.empty or presets.iloc[0] not in C.list_presets():
        return ()
    has = C.preset_modalities(C.load_preset(presets.iloc[0]))
    return tuple(m for m in C.MODALITIES if m not in has)
