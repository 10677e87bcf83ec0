"""Read every finished run under runs/ into one DataFrame: one row per name a selection gave it.

A run folder holds one identity, and every selection that asked for it is recorded in its
names.json (ablations/study/homes.py): a sweep point equal to the preset's default, a Table 3
entry trained by a sweep of row f. Each such name is a row here (its `folder` column says where
the files are), so each table and sweep reports the run whoever trained it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from ablations.study import config as C
from ablations.study import homes
from ablations.study.provenance import build_label

PAPER_FILE = Path(__file__).parent / "paper_numbers.yaml"
COLUMNS = ["name", "table", "entry", "modality", "variant", "preset", "seed", "mode", "row", "top1",
           "top5", "throughput", "params", "macs", "train_time_s", "wall_time_s", "config"]  # fmt: skip
# Row mvitv2's model with Hiera's conventions (models.model_stats.model_summary), beside row a.
CONVENTION_COLUMNS = ["params_hiera_conventions", "macs_hiera_conventions"]
# One line per finished run in the report's runs.csv (the results file the docs are built from).
# wall_time_s: the run's wall clock (all its segments, resumes included); build: which tree trained it.
RESULT_COLUMNS = ["table", "entry", "modality", "mode", "seed", "top1", "top5", "throughput", "params",
                  "macs", "train_time_s", "wall_time_s", "build"]  # fmt: skip
# A sweep's runs (--set key=a,b,c): its id and this run's swept values (ablations/study/sweep.py).
SWEEP_COLUMNS = ["sweep_id", "sweep_values", "sweep_baseline"]
FOLDER = "folder"  # where the run's files are, relative to runs/ (the name may lead there from elsewhere)
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
_FAILED: list = []  # parts of this report that could not be written: the exit status says so


def say_damaged(what: str, consequence: str = "this run is left out of the report") -> None:
    """One line per damaged file and report (analysis.report.write_report starts a new report)."""
    if what not in _SAID:
        _SAID.add(what)
        print(f"[damaged] {what}; {consequence}", flush=True)


def say_failed(what: str, consequence: str) -> None:
    """say_damaged for a part of the report that is left out (a table): failed_parts() lists it."""
    if what not in _FAILED:
        _FAILED.append(what)
        say_damaged(what, consequence)


def failed_parts() -> list[str]:
    """What the report written last left out (ablate.py then exits 1)."""
    return list(_FAILED)


def new_report() -> None:
    _SAID.clear()
    _FAILED.clear()


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


def load_runs(runs_dir, quiet: bool = False, sweeps: bool = False) -> pd.DataFrame:
    """Finished runs (those with metrics.json), one row per name (the folder's own, and each name
    in its names.json); unfinished folders are left out, and damaged ones (read_run) are said in
    one line each (unless quiet) and listed in df.attrs["damaged"] as [(folder, why)]: one damaged
    folder never stops the report of the others. sweeps=True: one row per sweep point instead
    (a run may be a point of several sweeps), rows outside sweeps left out."""
    records, damaged = [], []
    runs_dir = Path(runs_dir)
    # Run folders sit at <table>/<row>/<modality>/<variant>/seed<k> (ablations.study.runs.run_dir);
    # runs kept deeper (a recipe search's runs/search/<grid>/...) belong to another report.
    for path in sorted(runs_dir.glob("*/*/*/*/seed*/metrics.json")):
        if path.relative_to(runs_dir).parts[0] in homes.RESERVED:
            continue
        m, cfg, why = read_run(path.parent)
        if why is not None:
            damaged.append((str(path.parent.relative_to(runs_dir)), why))
            if not quiet:
                say_damaged(why)
            continue
        folder = path.parent.relative_to(runs_dir).as_posix()
        env = m.get("env") if isinstance(m.get("env"), dict) else {}
        for meta in [m["run"], *homes.names(path.parent, homes.folder_key(path.parent))]:
            rec = {k: meta.get(k) for k in COLUMNS[:9]}
            rec.update({k: m.get(k) for k in COLUMNS[9:16]})
            rec["config"] = cfg
            rec.update({k: m.get(k) for k in CONVENTION_COLUMNS})
            sweep = meta.get("sweep") or {}
            values = sweep.get("values")  # in the order the keys were given (metrics.json sorts them)
            values = {k: values[k] for k in sweep.get("keys", values)} if values else None
            rec.update(sweep_id=sweep.get("id"), sweep_values=values, sweep_baseline=sweep.get("baseline"))
            rec.update(build=build_label(env), **{k: env.get(k) for k in PROVENANCE_COLUMNS[1:]})
            records.append(rec | {FOLDER: folder})
    df = pd.DataFrame(
        records, columns=COLUMNS + CONVENTION_COLUMNS + SWEEP_COLUMNS + PROVENANCE_COLUMNS + [FOLDER]
    )
    if sweeps:
        df = df[df["sweep_id"].notna()]
        df = df[~df[["name", "sweep_id"]].astype(str).duplicated()]
    else:  # a name asked for by several sweeps (or by a sweep and a table) is one run of its table
        df = df[~df["name"].duplicated()]
    df = df.reset_index(drop=True)
    for col in COLUMNS[9:16] + CONVENTION_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df.attrs["damaged"] = damaged
    return df


def run_results(df: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The variant's finished runs, one line each (RESULT_COLUMNS), in a fixed order: the report's
    runs.csv, from which analysis.docs writes every per-run number the docs show."""
    runs = df.loc[df["variant"] == variant, RESULT_COLUMNS]
    return runs.sort_values(["table", "entry", "modality", "mode", "seed"]).reset_index(drop=True)


def no_recipe(df: pd.DataFrame, variant: str) -> tuple[str, ...]:
    """The modalities the variant's preset has no recipe for (in1k-b: video), so reports can say
    so instead of "no runs yet"."""
    presets = df.loc[df["variant"] == variant, "preset"]
    if presets.empty or presets.iloc[0] not in C.list_presets():
        return ()
    has = C.preset_modalities(C.load_preset(presets.iloc[0]))
    return tuple(m for m in C.MODALITIES if m not in has)
