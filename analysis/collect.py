"""Read every finished run under runs/ into one DataFrame (one row per run folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from ablations.study import config as C
from ablations.study.provenance import build_label

PAPER_FILE = Path(__file__).parent / "paper_numbers.yaml"
COLUMNS = ["name", "table", "entry", "modality", "variant", "preset", "seed", "mode", "row",
           "top1", "top5", "throughput", "params", "macs", "train_time_s", "config"]  # fmt: skip
# Row mvitv2's model with Hiera's conventions (models.model_stats.model_summary), beside row a.
CONVENTION_COLUMNS = ["params_hiera_conventions", "macs_hiera_conventions"]
# A sweep's runs (--set key=a,b,c): its id and this run's swept values (ablations/study/sweep.py).
SWEEP_COLUMNS = ["sweep_id", "sweep_values"]
# Which build trained the run (ablations/study/provenance.py) and with which versions.
PROVENANCE_COLUMNS = ["build", "torch", "timm", "python"]


def paper_numbers() -> dict:
    return yaml.safe_load(PAPER_FILE.read_text())


def paper_speedup(step: str, modality: str, paper: dict | None = None) -> float:
    """The paper's Table 1 speed of `step` over the mvitv2 row (A100 fp16, size L); nan if the
    paper gives none."""
    rows = (paper or paper_numbers())["table1"]["rows"]
    speed = rows.get(step, {}).get(modality, {}).get("speed")
    return speed / rows["mvitv2"][modality]["speed"] if speed else float("nan")


# What the tables read from a run's files; a folder without them is damaged (or not a run).
RUN_KEYS = ("name", "table", "entry", "modality", "variant", "seed")
CONFIG_SECTIONS = ("model", "data", "mae", "runtime")
_SAID: set = set()  # damaged files already said by this report


def say_damaged(what: str, consequence: str = "this run is left out of the report") -> None:
    """One line per damaged file and report (analysis.report.write_report starts a new report)."""
    if what not in _SAID:
        _SAID.add(what)
        print(f"[damaged] {what}; {consequence}", flush=True)


def new_report() -> None:
    _SAID.clear()


def read_run(folder: Path) -> tuple[dict | None, dict | None, str | None]:
    """(metrics, config, None) of a finished run folder, or (None, None, why it is damaged): an
    unreadable or wrong-shaped metrics.json or config.yaml (a stray folder, a truncated copy)."""
    try:
        m = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return None, None, f"{folder / 'metrics.json'} is unreadable ({type(e).__name__}: {str(e)[:80]})"
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as e:
        why = str(e).splitlines()[0][:80] if str(e) else ""
        return None, None, f"{folder / 'config.yaml'} is unreadable ({type(e).__name__}: {why})"
    run = m.get("run") if isinstance(m, dict) else None
    if not isinstance(run, dict) or any(k not in run for k in RUN_KEYS):
        return None, None, f"{folder / 'metrics.json'} is not a run's metrics (no run {'/'.join(RUN_KEYS)})"
    if not isinstance(cfg, dict) or cfg.get("mode") not in C.MODES:
        return None, None, f"{folder / 'config.yaml'} is not a run config (mode: mae or supervised)"
    bad = [k for k in (*CONFIG_SECTIONS, *C.PHASES[cfg["mode"]]) if not isinstance(cfg.get(k), dict)]
    if bad or not {"size", "step"} <= set(cfg["model"]):
        return (
            None,
            None,
            f"{folder / 'config.yaml'} is not a run config (no {(bad or ['model.size/step'])[0]})",
        )
    return m, cfg, None


def load_runs(runs_dir, quiet: bool = False) -> pd.DataFrame:
    """Finished runs (those with metrics.json); unfinished folders are left out, and damaged ones
    (read_run) are said in one line each (unless quiet) and listed in df.attrs["damaged"] as
    [(folder, why)]: one damaged folder never stops the report of the others."""
    records, damaged = [], []
    runs_dir = Path(runs_dir)
    # Run folders sit at <table>/<row>/<modality>/<variant>/seed<k> (ablations.study.runs.run_dir);
    # runs kept deeper (a recipe search's runs/search/<grid>/...) belong to another report.
    for path in sorted(runs_dir.glob("*/*/*/*/seed*/metrics.json")):
        if path.relative_to(runs_dir).parts[0] in ("report", "search"):
            continue
        m, cfg, why = read_run(path.parent)
        if why is not None:
            damaged.append((str(path.parent.relative_to(runs_dir)), why))
            if not quiet:
                say_damaged(why)
            continue
        rec = {k: m["run"].get(k) for k in COLUMNS[:9]}
        rec.update({k: m.get(k) for k in COLUMNS[9:15]})
        rec["config"] = cfg
        rec.update({k: m.get(k) for k in CONVENTION_COLUMNS})
        sweep = m.get("run", {}).get("sweep") or {}
        values = sweep.get("values")  # in the order the keys were given (metrics.json sorts them)
        values = {k: values[k] for k in sweep.get("keys", values)} if values else None
        rec.update(sweep_id=sweep.get("id"), sweep_values=values)
        env = m.get("env") if isinstance(m.get("env"), dict) else {}
        rec.update(build=build_label(env), **{k: env.get(k) for k in PROVENANCE_COLUMNS[1:]})
        records.append(rec)
    df = pd.DataFrame(records, columns=COLUMNS + CONVENTION_COLUMNS + SWEEP_COLUMNS + PROVENANCE_COLUMNS)
    for col in COLUMNS[9:15] + CONVENTION_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df.attrs["damaged"] = damaged
    return df


def no_recipe(df: pd.DataFrame, variant: str) -> tuple[str, ...]:
    """The modalities the variant's preset has no recipe for (laptop: video), so reports can say
    so instead of "no runs yet"."""
    presets = df.loc[df["variant"] == variant, "preset"]
    if presets.empty or presets.iloc[0] not in C.list_presets():
        return ()
    has = C.preset_modalities(C.load_preset(presets.iloc[0]))
    return tuple(m for m in C.MODALITIES if m not in has)
