"""Table 1, Table 3 and Fig. 8 as DataFrames (raw numbers, for CSV) and Markdown (formatted),
ours beside the paper's. Means and stds are over seeds; speeds are also given as ratios to the
mvitv2 row. Output depends on the runs only: fixed row order, fixed float formats."""

from __future__ import annotations

import math

import pandas as pd

from ablations.study.config import MODALITIES, entry_changes, get_dotted, list_rows, load_table, table_entries
from analysis.collect import paper_speedup

UNITS = {"image": "im/s", "video": "clip/s"}


def select(df: pd.DataFrame, table: str, entry: str, modality: str, variant: str) -> pd.DataFrame:
    m = (
        (df["table"] == table)
        & (df["entry"] == entry)
        & (df["modality"] == modality)
        & (df["variant"] == variant)
    )
    return df[m]


def stat(runs: pd.DataFrame, col: str) -> tuple[float, float, int]:
    """(mean, std over seeds (0 for one seed), n); NaN mean when there are no runs."""
    values = runs[col].dropna()
    if values.empty:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


def fmt(mean: float, std: float = math.nan, n: int = 1, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if n > 1 else text


def times(r: float) -> str:
    return "–" if math.isnan(r) else f"{r:.2f}x"


def times_spread(r: float, low: float, high: float) -> str:
    """'1.26x [1.20-1.31]': a side-by-side ratio with its min-max over rounds."""
    return "–" if math.isnan(r) else f"{r:.2f}x [{low:.2f}-{high:.2f}]"


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def modality_markdown(header: list[str], rows: list[list[str]], fixed: int, modalities) -> str:
    """markdown() with only the column blocks of `modalities`: each line is `fixed` leading
    cells, then one equal block per modality of MODALITIES, in that order."""
    per = (len(header) - fixed) // len(MODALITIES)
    keep = list(range(fixed)) + [
        fixed + i * per + j for i, m in enumerate(MODALITIES) if m in modalities for j in range(per)
    ]
    return markdown([header[k] for k in keep], [[r[k] for k in keep] for r in rows])


def _paper(d: dict | None, *keys):
    for k in keys:
        d = (d or {}).get(k)
    return math.nan if d is None else float(d)


# ----------------------------------------------------------------------------- Table 1


def table1(
    df: pd.DataFrame,
    variant: str,
    paper: dict,
    speeds: dict | None = None,
    modalities: tuple[str, ...] = MODALITIES,
) -> tuple[pd.DataFrame, str]:
    """speeds: {modality: analysis.speed_table record} timed side by side; a modality without one
    falls back to the runs' own throughput (timed at the end of each run, minutes apart). The
    Markdown has columns for `modalities` only; the DataFrame has every modality's."""
    rows, md, speeds = [], [], speeds or {}
    base = {m: stat(select(df, "table1", "mvitv2", m, variant), "throughput")[0] for m in MODALITIES}
    for row in list_rows():
        prow = paper["table1"]["rows"].get(row, {})
        rec, cells = {"row": row, "setting": prow.get("label", row)}, [row, prow.get("label", row)]
        for m in MODALITIES:
            runs = select(df, "table1", row, m, variant)
            acc, sd, n = stat(runs, "top1")
            speed = stat(runs, "throughput")[0]
            rel = (ratio(speed, base[m]),) * 3  # (ratio, low, high)
            side = (speeds.get(m) or {}).get("rows", {}).get(row)
            if side is not None:
                speed, rel = side["throughput"], (side["ratio"], side["ratio_low"], side["ratio_high"])
            p_acc, p_speed = _paper(prow, m, "acc"), _paper(prow, m, "speed")
            rec |= {
                f"{m}_top1": acc, f"{m}_top1_std": sd, f"{m}_seeds": n, f"{m}_speed": speed,
                f"{m}_speedup": rel[0], f"{m}_speedup_low": rel[1], f"{m}_speedup_high": rel[2],
                f"{m}_speed_side_by_side": side is not None, f"{m}_params_m": stat(runs, "params")[0] / 1e6,
                f"{m}_gmacs": stat(runs, "macs")[0] / 1e9, f"{m}_paper_top1": p_acc,
                f"{m}_paper_speed": p_speed, f"{m}_paper_speedup": paper_speedup(row, m, paper),
            }  # fmt: skip
            cells += [
                fmt(acc, sd, n),
                fmt(p_acc, digits=1),
                fmt(speed, digits=1),
                times_spread(*rel) if side is not None else times(rel[0]),
                fmt(p_speed, digits=1),
                times(rec[f"{m}_paper_speedup"]),
            ]
        rows.append(rec)
        md.append(cells)
    header = ["row", "setting"]
    for m in MODALITIES:
        u = UNITS[m]
        header += [f"{m} top-1", "paper", u, "x mvitv2", f"paper {u}", "paper x"]
    return pd.DataFrame(rows), modality_markdown(header, md, 2, modalities)


CONVENTIONS_LABEL = "mvitv2 with Hiera conventions"
CONVENTIONS_NOTE = (
    f"\n`{CONVENTIONS_LABEL}`: row mvitv2 with row a's non-ablated conventions (channels doubled in "
    "attention, head mean-then-norm; models.hiera_conventions). Row a's MAC change comes mostly from "
    "this switch, not from replacing relative positions (size L, images: 43.7 -> 41.8 -> 41.6 GMACs).\n"
)


def model_sizes(df: pd.DataFrame, variant: str) -> str:
    """Params and MACs per row and modality (our sizes, one sample), with the line "mvitv2 with
    Hiera conventions" between rows mvitv2 and a."""
    md = []
    for row in list_rows():
        lines = [(row, "params", "macs")]
        if row == list_rows()[0]:
            lines.append((CONVENTIONS_LABEL, "params_hiera_conventions", "macs_hiera_conventions"))
        for label, params, macs in lines:
            cells = [label]
            for m in MODALITIES:
                runs = select(df, "table1", row, m, variant)
                if runs.empty:
                    runs = select(df, "fig8", row, m, variant)
                cells += [fmt(stat(runs, params)[0] / 1e6, digits=3)]
                cells += [fmt(stat(runs, macs)[0] / 1e6, digits=1)]
            md.append(cells)
    head = ["row", "image params (M)", "image MMACs", "video params (M)", "video MMACs"]
    return markdown(head, md) + CONVENTIONS_NOTE


# ----------------------------------------------------------------------------- Table 3


def _is_default(entry: dict, cfg: dict) -> bool:
    """True if the entry's change leaves row f's config as it is (the preset's own setting)."""
    try:
        return all(get_dotted(cfg, k) == v for k, v in entry_changes(entry, cfg).items())
    except (KeyError, TypeError):  # a config from before the key existed: not this entry's default
        return False


def table3_entries() -> dict[str, dict[str, dict]]:
    """{"group-value": {modality: entry}} in table3.yaml's order (groups, then their values); a
    modality is absent where the entry does not apply to it (mask ratios are per modality)."""
    per_modality = {m: dict(table_entries("table3", m)) for m in MODALITIES}
    order = {}
    for group, spec in load_table("table3")["groups"].items():
        for value in spec["entries"]:
            name = f"{group}-{value}"
            order[name] = {m: per_modality[m][name] for m in MODALITIES if name in per_modality[m]}
    return order


def table3_runs(
    df: pd.DataFrame, name: str, entry: dict | None, m: str, variant: str
) -> tuple[pd.DataFrame, bool]:
    """(runs, is_default) of one Table 3 entry: is_default when its change leaves row f's config as
    it is (known once row f has a run); a default entry's runs are Table 1's row f (one folder)."""
    runs, default = select(df, "table3", name, m, variant), False
    if entry is not None:
        f_runs = select(df, "table1", "f", m, variant)
        default = not f_runs.empty and _is_default(entry, f_runs["config"].iloc[0])
        if runs.empty and default:
            runs = f_runs
    return runs, default


def table3(
    df: pd.DataFrame, variant: str, paper: dict, modalities: tuple[str, ...] = MODALITIES
) -> tuple[pd.DataFrame, str]:
    """Per group and value: ours (its own run, or Table 1's row f where the value is the preset's
    default, marked with *) beside the paper's (its default marked with *). {m}_applies: the entry
    exists for modality m (the mask ratios differ between image and video)."""
    groups = paper["table3"]["groups"]
    rows, md = [], []
    for name, per_mod in table3_entries().items():
        group, value = name.split("-", 1)
        pgroup = groups.get(group, {})
        rec, cells = {"group": group, "value": value}, [group, value]
        for m in MODALITIES:
            runs, default = table3_runs(df, name, per_mod.get(m), m, variant)
            acc, sd, n = stat(runs, "top1")
            p_acc = _paper(pgroup.get("entries"), value, m)
            pdef = pgroup.get("default")
            pdef = pdef.get(m) if isinstance(pdef, dict) else pdef
            rec |= {f"{m}_top1": acc, f"{m}_top1_std": sd, f"{m}_seeds": n, f"{m}_default": default,
                    f"{m}_paper_top1": p_acc, f"{m}_paper_default": pdef == value,
                    f"{m}_applies": m in per_mod}  # fmt: skip
            cells += [fmt(acc, sd, n) + " *" * default, fmt(p_acc, digits=1) + " *" * (pdef == value)]
        rows.append(rec)
        md.append(cells)
    header = ["ablation", "value"] + [h for m in MODALITIES for h in (f"{m} top-1", "paper")]
    return pd.DataFrame(rows), modality_markdown(header, md, 2, modalities)


# ----------------------------------------------------------------------------- Fig. 8


def supervised_runs(df: pd.DataFrame, row: str, m: str, variant: str) -> pd.DataFrame:
    runs = select(df, "fig8", row, m, variant)
    if runs.empty:  # Fig. 8's mvitv2 run is Table 1's (same config, one folder)
        t1 = select(df, "table1", row, m, variant)
        runs = t1[t1["mode"] == "supervised"]
    return runs


def mae_runs(df: pd.DataFrame, row: str, m: str, variant: str) -> pd.DataFrame:
    t1 = select(df, "table1", row, m, variant)
    return t1[t1["mode"] == "mae"]


def fig8(
    df: pd.DataFrame, variant: str, paper: dict, modalities: tuple[str, ...] = MODALITIES
) -> tuple[pd.DataFrame, str]:
    rows, md = [], []
    p1, p8 = paper["table1"]["rows"], paper["fig8"]["rows"]
    for row in list_rows():
        rec, cells = {"row": row}, [row]
        for m in MODALITIES:
            sup, sup_sd, sup_n = stat(supervised_runs(df, row, m, variant), "top1")
            mae, mae_sd, mae_n = stat(mae_runs(df, row, m, variant), "top1")
            p_sup, p_mae = (
                _paper(p8, row, m, "acc"),
                _paper(p1, row, m, "acc") if row != "mvitv2" else math.nan,
            )
            rec |= {f"{m}_supervised_top1": sup, f"{m}_supervised_std": sup_sd,
                    f"{m}_supervised_seeds": sup_n, f"{m}_mae_top1": mae, f"{m}_mae_std": mae_sd,
                    f"{m}_mae_seeds": mae_n, f"{m}_mae_minus_supervised": mae - sup,
                    f"{m}_paper_supervised_B": p_sup, f"{m}_paper_mae_L": p_mae}  # fmt: skip
            cells += [fmt(sup, sup_sd, sup_n), fmt(mae, mae_sd, mae_n), fmt(mae - sup),
                      fmt(p_sup, digits=1), fmt(p_mae, digits=1)]  # fmt: skip
        rows.append(rec)
        md.append(cells)
    header = ["row"]
    for m in MODALITIES:
        header += [f"{m} supervised", f"{m} MAE", "MAE - sup.", "paper sup. (B)", "paper MAE (L, Tab. 1)"]
    return pd.DataFrame(rows), modality_markdown(header, md, 1, modalities)
