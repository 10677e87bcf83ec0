"""The cheap stage of a recipe search: MAE-pretrain each grid point, read its encoder, no finetuning.

    python -m analysis.probe_search video --rows b f --csv analysis/figures/cpu/video_search.csv
    python -m analysis.probe_search video --rows b --only unlabeled_x4_hog --set runtime.threads=1
    python -m analysis.probe_search video --dry-run          # the runs and their folders
    python -m analysis.probe_search video --unfinished       # probe what has pretrained so far

For each point of a grid (ablations/study/searches/<grid>.yaml, as analysis.recipe_search reads it)
and each row, the point's MAE run (seed 0) trains only its pretrain phase, in the folder its
ablate.py run has (<runs-dir>/search/<grid>/...): a later `ablate.py` or `recipe_search` of the same
point resumes there and trains only the finetuning. Then `analysis.feature_probe` reads the encoder
(token spread, cosine, linear probe top-1) and the same model at random init. Finetuning 12 epochs
costs ~3x the pretraining; the probe tells first whether the encoder is worth finetuning.

A point passes when its probe beats the row's random-init probe and its token spread is at least
--min-spread (below it, MAE has collapsed the tokens within a clip: docs/results.md, video).
The CSV (one line per point and row, '#' lines naming the command) is rewritten after every
point, so a search stopped half way keeps what it measured; a probed point is never trained or
probed twice (<run>/pretrain/feature_probe.json). --unfinished trains nothing and probes a point
whose pretraining has not finished (stopped, or still running elsewhere) at its last checkpoint;
the table says how far it got ("8000 x 2 + 235 steps of 4 (unfinished)"). This is a separate
module from recipe_search because it trains in this process and stops after one phase, where
recipe_search runs whole ablate.py commands.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import torch
import yaml

from ablations.store.atomic import write_json_atomic
from ablations.store.measurements import write_measurements
from ablations.study import runs as R
from ablations.study.config import ConfigError, parse_sets, resolve
from ablations.train.build import build_mae_model
from ablations.train.checkpoint import load_checkpoint
from ablations.train.distributed import init_distributed
from ablations.train.loop import CKPT
from ablations.train.phases import read_done, run_phase
from analysis import feature_probe
from analysis.recipe_search import load_grid, point_selection

PROBE = "feature_probe.json"  # in <run>/pretrain/: the encoder's and the random init's probe
COLUMNS = [
    "point", "row", "levers", "pretrain clips x epochs", "MAE loss", "token spread", "random-init spread",
    "probe top-1", "random-init probe", "passes", "pretrain wall s",
]  # fmt: skip


def point_run(grid: dict, point: dict, row: str):
    """The point's MAE run of `row`, seed 0 (a grid's supervised points have nothing to probe)."""
    return resolve(point_selection({**grid, "row": row, "seeds": 1}, {**point, "mode": "mae"}))[0]


def pretrain(run, runs_dir: Path, log=print) -> Path:
    """Train the run's pretrain phase in its ablate.py folder (resumed or reused when there);
    returns the folder. The wall-clock segment is closed, so wall_time.json holds this time."""
    with ExitStack() as held:
        outcome, _, folder = R.claim(held, run, runs_dir, force=False, log=log)
        if outcome in ("locked", "changed"):
            raise ConfigError(f"{run.name}: {outcome} (see the line above); probe it once that is settled")
        if outcome == "train":
            R.set_threads(run.config)
            dist = init_distributed(run.config.get("runtime", {}).get("device", "auto"))
            run_phase("pretrain", run.config, folder / "pretrain", dist, progress=False)
            R.close_segment(folder)
    return folder


_SCRATCH: dict[str, dict] = {}  # random-init probes by (model, data) config: MAE settings do not change them


def scratch_probe(folder: Path, cfg: dict, train_items: int) -> dict:
    key = json.dumps([cfg["model"], cfg["data"], train_items], sort_keys=True)
    if key not in _SCRATCH:
        _SCRATCH[key] = feature_probe.probe(folder, True, train_items)
    return _SCRATCH[key]


def probe_folder(folder: Path, train_items: int) -> dict:
    """The encoder's and the random init's probes (feature_probe.probe), kept in PROBE."""
    path = folder / "pretrain" / PROBE
    if path.exists():
        return json.loads(path.read_text())
    cfg = yaml.safe_load((folder / R.CONFIG).read_text())
    out = {
        "mae": feature_probe.probe(folder, False, train_items),
        "scratch": scratch_probe(folder, cfg, train_items),
        "wall_s": round(sum(e - s for s, e in R.wall_segments(folder) if e is not None)),
    }
    write_json_atomic(out, path)
    return out


def unfinished_probe(folder: Path, train_items: int) -> dict | None:
    """Probe the encoder in an unfinished pretraining's last checkpoint (read only: the run may be
    training), kept in <run>/pretrain/feature_probe-epoch<N>.json; None without a checkpoint."""
    ckpt = load_checkpoint(folder / "pretrain" / CKPT)
    if ckpt is None:
        return None
    path = folder / "pretrain" / f"feature_probe-epoch{ckpt['epoch']}.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg = yaml.safe_load((folder / R.CONFIG).read_text())
    mae = build_mae_model(cfg)
    mae.load_state_dict(ckpt["model"])
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Path(tmp) / "encoder.pth"
        torch.save(mae.encoder_state_dict(), encoder)
        out = {"mae": feature_probe.probe(folder, False, train_items, encoder=encoder)}
    hist = [h["train_loss"] for h in ckpt.get("history") or []]
    out |= {"scratch": scratch_probe(folder, cfg, train_items), "wall_s": round(ckpt["elapsed_s"]),
            "epochs_done": ckpt["epoch"], "steps_into_next": ckpt.get("step", 0),
            "loss": f"{hist[0]:.3f} -> {hist[-1]:.3f}" if hist else None}  # fmt: skip
    write_json_atomic(out, path)
    return out


def latest_unfinished(folder: Path) -> dict | None:
    """The probe of the furthest checkpoint probed so far (unfinished_probe's files), or None."""
    found = sorted(
        folder.glob("pretrain/feature_probe-epoch*.json"), key=lambda p: int(p.stem.split("epoch")[1])
    )
    return json.loads(found[-1].read_text()) if found else None


def csv_line(label: str, point: dict, run, folder: Path, probed: dict, min_spread: float) -> dict:
    cfg, done = run.config, read_done(folder / "pretrain" / "done.json") or {}
    mae, scratch = probed["mae"], probed["scratch"]
    clips = cfg["pretrain"].get("train_size") or cfg["data"]["train_size"]
    sets = ", ".join(f"{k}={v}" for k, v in (point.get("sets") or {}).items() if not k.startswith("runtime."))
    passes = mae["linear_probe_top1"] > scratch["linear_probe_top1"] and mae["token_spread"] >= min_spread
    first, last = done.get("loss_first"), done.get("loss_last")
    epochs = cfg["pretrain"]["epochs"]
    if "epochs_done" in probed:  # an unfinished pretraining, probed at its last checkpoint
        steps = probed.get("steps_into_next")
        part = f" + {steps} steps" if steps else ""
        epochs = f"{probed['epochs_done']}{part} of {epochs} (unfinished)"
    return {
        "point": label, "row": cfg["model"]["step"], "levers": point.get("levers") or sets or "the preset",
        "pretrain clips x epochs": f"{clips} x {epochs}",
        "MAE loss": probed.get("loss") or (None if None in (first, last) else f"{first:.3f} -> {last:.3f}"),
        "token spread": mae["token_spread"], "random-init spread": scratch["token_spread"],
        "probe top-1": mae["linear_probe_top1"], "random-init probe": scratch["linear_probe_top1"],
        "passes": "yes" if passes else "no", "pretrain wall s": probed["wall_s"],
    }  # fmt: skip


def kept_lines(path: Path, rows: list[str]) -> list[dict]:
    """The lines of an earlier table for rows this command does not probe (they stay in it)."""
    if not path.exists():
        return []
    text = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return [r for r in csv.DictReader(text) if r.get("row") not in rows]


def write_csv(path: Path, command: str, lines: list[dict], grid_name: str, train_items: int) -> None:
    note = (
        f"grid ablations/study/searches/{grid_name}.yaml, seed 0, MAE pretrain phase only (no "
        f"finetuning); linear probe fitted on {train_items} training items; wall = the pretrain phase's"
    )
    write_measurements(path, command, COLUMNS, [[r.get(c, "") for c in COLUMNS] for r in lines], note)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.probe_search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("grid", help="a grid name in ablations/study/searches/ (e.g. video) or a .yaml path")
    p.add_argument("--rows", nargs="+", metavar="ROW", help="rows to probe (default: the grid's row)")
    p.add_argument("--runs-dir", default="runs", help="runs go to <runs-dir>/search/<grid> (default: runs)")
    p.add_argument(
        "--csv", type=Path, help="also write the table here (default: <runs-dir>/search/<grid>/probes.csv)"
    )
    p.add_argument("--only", nargs="+", metavar="POINT", help="probe only these points")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="extra",
                   help="added to every point's settings (e.g. runtime.threads=1)")  # fmt: skip
    p.add_argument(
        "--min-spread", type=float, default=0.25, help="token spread below this is collapse (0.25)"
    )
    p.add_argument("--train-items", type=int, default=600, help="training items the probe fits on (600)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their folders; train nothing")
    p.add_argument("--unfinished", action="store_true",
                   help="train nothing: probe each point as far as it has pretrained")  # fmt: skip
    args = p.parse_args(argv)
    try:
        name, grid = load_grid(args.grid)
        extra = parse_sets(args.extra)
        points = {
            k: {**(v or {}), "sets": {**((v or {}).get("sets") or {}), **extra}}
            for k, v in grid["points"].items()
        }
        points = {k: v for k, v in points.items() if v.get("mode", "mae") == "mae"}
        unknown = sorted(set(args.only or []) - set(points))
        if unknown:
            raise ConfigError(
                f"unknown or supervised point(s) {unknown}; the grid's MAE points are {list(points)}"
            )
        rows = args.rows or [grid["row"]]
        runs = {(k, r): point_run(grid, v, r) for k, v in points.items() for r in rows}  # all checked first
    except ConfigError as e:
        print(f"python -m analysis.probe_search: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.runs_dir) / "search" / name
    csv_path = args.csv or out / "probes.csv"
    given = list(argv if argv is not None else sys.argv[1:])
    if "--only" in given:  # the header names the whole search: --only's points are one part of it
        i = given.index("--only")
        given[i : i + 1 + len(args.only)] = []
    command = "python -m analysis.probe_search " + " ".join(given)
    lines = [] if args.dry_run else kept_lines(csv_path, rows)
    for (label, row), run in runs.items():
        folder = R.run_dir(out, run)
        chosen = not args.only or label in args.only
        if args.dry_run:
            print(f"== {label} row {row}: {folder}") if chosen else None
            continue
        if not chosen:  # probed before: its line stays in the table
            probed = (
                probe_folder(folder, 0)
                if (folder / "pretrain" / PROBE).exists()
                else latest_unfinished(folder)
            )
        elif args.unfinished:  # train nothing: the finished pretraining, else the last checkpoint
            print(f"== {label} row {row} (as far as it has pretrained)", flush=True)
            done = (folder / "pretrain" / "done.json").exists()
            probed = (
                probe_folder(folder, args.train_items) if done else unfinished_probe(folder, args.train_items)
            )
        else:
            print(f"== {label} row {row}", flush=True)
            try:
                folder = pretrain(run, out)
            except ConfigError as e:
                print(f"python -m analysis.probe_search: {e}", file=sys.stderr)
                continue
            probed = probe_folder(folder, args.train_items)
        if probed is None:
            continue
        lines.append(csv_line(label, points[label], run, folder, probed, args.min_spread))
        if chosen:
            print("   " + ", ".join(f"{k}: {lines[-1][k]}" for k in COLUMNS[2:]), flush=True)
            write_csv(csv_path, command, lines, name, args.train_items)
    if lines:
        order = list(points)  # the grid's order, then row
        lines.sort(key=lambda r: (order.index(r["point"]) if r["point"] in order else len(order), r["row"]))
        write_csv(csv_path, command, lines, name, args.train_items)
    if not args.dry_run:
        print(f"written to {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
