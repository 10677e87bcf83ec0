"""Run folders: runs/<table>/<entry>/<modality>/<variant>/seed<k>/.

Each holds config.yaml (the resolved config), identity.json (what the result depends on:
ablations/study/identity.py), the engine's <phase>/ folders (logs, resumable checkpoints, done.json),
wall_time.json (the wall-clock segments of every invocation that worked on it) and metrics.json,
written atomically once the run has finished. A run is finished when metrics.json exists and
identity.json equals the identity asked for; a run whose identity changed is never reused or
resumed (--force retrains it). A folder is trained by one process at a time (ablations/store/lock.py).
A run is found by its identity, not its name: every selection that resolves to the same identity
is led to the folder that first trained it (ablations/study/homes.py; names.json there lists them).
train.log (ablations/store/runlog.py) has everything printed while the run trained, across resumes.
"""

from __future__ import annotations

import errno
import json
import platform
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import timm
import torch
import yaml

from ablations.store.atomic import remove_orphans, write_atomic, write_json_atomic
from ablations.store.lock import RunLocked, exclusive
from ablations.store.runlog import tee_output
from ablations.study import failure, homes
from ablations.study.config import PHASES, Run
from ablations.study.identity import identity_diff, run_identity
from ablations.study.provenance import build_at_start
from ablations.train import distributed as D
from ablations.train.phases import run_training as train
from models.model_stats import build_model, input_shape, model_summary
from models.throughput import default_dtypes, measure_throughput

LOCK, CONFIG, IDENTITY, METRICS = ".lock", "config.yaml", "identity.json", "metrics.json"
WALL = "wall_time.json"
JOBS = "slurm"  # cluster jobs' records and logs (ablations/cli/launch): not part of the run, kept by --force
MISSING = "missing"
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
UNKNOWN = "what this folder trained is unknown"  # the reason status gives for a damaged folder
KEPT = homes.SETUP  # a folder with only these has trained nothing yet


def run_dir(runs_dir: Path, run: Run) -> Path:
    """The run's folder: its identity's home wherever it was trained, else runs_dir/run.name."""
    return homes.home(runs_dir, run)


def read_file(path: Path, parse) -> tuple[object | None, str | None]:
    """(parsed content, None), or (None, why not): 'missing' or 'unreadable (<error>)'."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, MISSING
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable ({e})"
    try:
        value = parse(text)
    except ValueError as e:  # json.JSONDecodeError and yaml.YAMLError are ValueErrors or close
        return None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0]})"
    except yaml.YAMLError as e:
        return None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0]})"
    if not isinstance(value, dict):
        return None, f"unreadable (not a mapping: {str(value)[:40]!r})"
    return value, None


def read_metrics(folder: Path) -> dict | None:
    return read_file(folder / METRICS, json.loads)[0]


def status(folder: Path, cfg: dict, ident: dict, log=print, repair: bool = True) -> tuple[str, list[str]]:
    """(state, reasons): 'new' (nothing there), 'changed' (trained something else; reasons say
    what), 'partial' (started, unfinished) or 'done'. Repairs what it safely can: a folder from
    before identity.json gets one when its config.yaml matches; an unreadable config.yaml of a
    matching run is rewritten (repair=False: nothing is written; --status only reads); an
    unreadable metrics.json makes the run 'partial', so its phases' done.json rebuild it without
    retraining."""
    if not folder.exists() or all(p.name in KEPT for p in folder.iterdir()):
        return "new", []
    old, why = read_file(folder / IDENTITY, json.loads)
    if old is None:
        old_cfg, why_cfg = read_file(folder / CONFIG, yaml.safe_load)
        try:
            old = {"config": run_identity(old_cfg)["config"], "data_files": ident["data_files"]}
        except (KeyError, TypeError, AttributeError) as e:  # None, or not a run config (no data:)
            why_cfg = why_cfg or f"not a run config (no {e})"
            return "changed", [f"{IDENTITY} {why}, {CONFIG} {why_cfg}: {UNKNOWN}"]
        if not identity_diff(old, ident) and repair:
            log(f"[note] {folder / IDENTITY} {why}: rebuilt from {CONFIG} and the data as it is now")
            write_json_atomic(ident, folder / IDENTITY)
    if not isinstance(old.get("config"), dict):
        return "changed", [f"{IDENTITY} holds no config mapping: {UNKNOWN}"]
    diff = identity_diff(old, ident)
    if diff:
        return "changed", diff
    if read_file(folder / CONFIG, yaml.safe_load)[0] is None and repair:
        write_atomic(folder / CONFIG, yaml.safe_dump(cfg, sort_keys=False))
        log(f"[repair] {folder / CONFIG} was unreadable; rewritten from {IDENTITY}")
    metrics, why = read_file(folder / METRICS, json.loads)
    if metrics is not None:
        return "done", []
    done = phases_done(folder, cfg)
    if why != MISSING or done:
        log(f"[repair] {folder / METRICS} {why}: every phase is done; rebuilding it from the phases' "
            "done.json (no training)" if done else
            f"[repair] {folder / METRICS} {why}: rebuilding it from the phases' done.json")  # fmt: skip
    return "partial", []


def phases_done(folder: Path, cfg: dict) -> bool:
    """Every phase of the run has its done.json: what is left is writing metrics.json."""
    return all((Path(folder) / p / "done.json").is_file() for p in PHASES[cfg["mode"]])


def clear(folder: Path) -> None:
    """Delete everything in a run folder but its lock, cluster job logs and the names that asked
    for it (for --force; names of another identity no longer count: homes.names)."""
    for p in folder.iterdir():
        if p.name in (LOCK, JOBS, homes.NAMES):
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def wall_segments(folder: Path) -> list[list[float | None]]:
    """[[start, end], ...] (Unix times) of every invocation that trained in folder. A segment
    killed before it could close (kill -9, power cut) ends at the newest file it wrote."""
    data = read_file(folder / WALL, json.loads)[0] or {}
    segments = [list(s) for s in _segments(data)]
    for seg in segments:
        if seg[1] is None:
            newest = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file() and p.name != LOCK]
            seg[1] = max([seg[0], *newest])
    return segments


def _segments(data: dict) -> list:
    """The well-formed [start, end] pairs of wall_time.json (a damaged entry is dropped)."""
    segments = data.get("segments")
    if not isinstance(segments, list):
        return []
    pair = [s for s in segments if isinstance(s, list) and len(s) == 2]
    return [s for s in pair if isinstance(s[0], (int, float)) and isinstance(s[1], (int, float, type(None)))]


def record_wall(folder: Path, segments: list) -> None:
    write_json_atomic({"segments": segments}, folder / WALL)


def open_segment(folder: Path) -> None:
    """Start a wall-clock segment (earlier ones closed; an open one ends at its last write)."""
    record_wall(folder, wall_segments(folder) + [[time.time(), None]])


def close_segment(folder: Path) -> list:
    """End the open segment now; returns every segment."""
    segments = _segments(read_file(folder / WALL, json.loads)[0] or {})
    segments = [list(s) for s in segments] or [[time.time(), None]]
    segments[-1][1] = time.time()
    record_wall(folder, segments)
    return wall_segments(folder)


# ----------------------------------------------------------------------------- the call sites
# Tests replace these two with fast fakes (monkeypatch ablations.study.runs.run_training / measure_model).


def run_training(cfg: dict, folder: Path, progress: bool | str = True) -> dict:
    return train(cfg, folder, progress=progress)


def measure_model(cfg: dict, attn_backend: str = "math") -> dict:
    """Params, MACs (one sample) and inference throughput of the run's classifier on this machine;
    attention timed with attn_backend ("math": the paper's protocol, or "auto": PyTorch's pick)."""
    model = build_model(cfg)
    shape = input_shape(model)
    out = model_summary(cfg, model)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg["runtime"]["device"] != "cpu" else "cpu"
    )
    bench = cfg.get("bench") or {}
    speeds = {}
    for dtype in default_dtypes(device):
        speeds[str(dtype).removeprefix("torch.")] = measure_throughput(
            model, shape, bench.get("batch_sizes", (1, 8, 32)), dtype, device,
            warmup=bench.get("warmup", 3), iters=bench.get("iters", 10), attn_backend=attn_backend,
        )  # fmt: skip
    out["throughput_by_dtype"] = speeds
    out["throughput"] = next(iter(speeds.values()))  # fp16 on GPU, fp32 on CPU
    out["bench_device"] = device_name(device)
    return out


# ----------------------------------------------------------------------------- environment


def set_threads(cfg: dict) -> None:
    """runtime.threads: CPU threads for torch (null: torch's default, one per core)."""
    threads = cfg["runtime"].get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def device_name(device=None) -> str:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment() -> dict:
    """The build (git commit, dirty flag and diff hash: ablations/study/provenance.py), the
    device and the versions of what trained the run."""
    return {
        **build_at_start(),
        "device": device_name(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": sys.version.split()[0],
        "host": platform.node(),
    }


# ----------------------------------------------------------------------------- one run


def execute(
    run: Run, runs_dir: Path, force: bool = False, progress: bool | str = True, log=print
) -> tuple[str, dict | None]:
    """Train one run unless finished. Returns (outcome, metrics): outcome is 'trained', 'skipped'
    (finished before), 'locked' (another process has it) or 'changed' (its identity differs; needs
    --force). Exceptions from training propagate; metrics.json is then not written.

    Under torchrun every rank calls this with the same run: rank 0 alone takes the lock, decides,
    writes files and copies its output to <run>/train.log; the other ranks get its decision and
    train with it. An error on any rank is raised on every rank (distributed.agreed)."""
    with ExitStack() as held:  # rank 0's lock and log stay held until the run is done
        outcome, metrics, folder = D.main_only(claim, held, run, runs_dir, force, log)
        if outcome != "train":
            return outcome, metrics
        set_threads(run.config)
        result = D.agreed(run_training, run.config, folder, progress=progress)
        return "trained", D.main_only(write_metrics, run, folder, result)


def _home(run: Run, runs_dir: Path, ident: dict, log=print) -> Path | None:
    """homes.settle, said when the run lives under another name; None when another command holds
    the identity's index lock too long (said)."""
    try:
        folder = homes.settle(runs_dir, run, ident)
    except RunLocked as e:
        log(f"[busy] {run.name}: its identity is being settled by another command ({e}); skipped. "
            "Rerun the same command.")  # fmt: skip
        return None
    except OSError as e:  # a read-only runs folder: a finished run is still found, not recorded
        if e.errno not in READ_ONLY:
            raise
        folder = homes.home(runs_dir, run)
    if folder != Path(runs_dir) / run.name:
        log(f"[reuse] {run.name}: the same resolved config as {folder.relative_to(runs_dir).as_posix()}")
    return folder


def claim(held: ExitStack, run: Run, runs_dir: Path, force: bool, log=print) -> tuple[str, dict | None, Path]:
    """Find the run's home (homes.settle), take its lock (kept on `held`) and decide: ('train',
    None, folder), ('skipped', metrics, folder), ('changed', None, folder) or ('locked', None,
    folder). Clears the folder for --force, writes config.yaml and identity.json, and opens a
    wall-clock segment."""
    ident = run_identity(run.config)
    folder = _home(run, runs_dir, ident, log)
    if folder is None:
        return "locked", None, run_dir(runs_dir, run)
    name = folder.relative_to(runs_dir).as_posix()
    try:
        held.enter_context(exclusive(folder / LOCK, holder="another process training it", log=log))
    except RunLocked as e:
        log(
            f"[busy] {name}: being trained by another process ({e}); skipped. Rerun the same "
            "command once it has finished to report it."
        )
        return "locked", None, folder
    except OSError as e:  # a read-only disk: a finished run needs no lock to be reported
        finished = e.errno in READ_ONLY and status(folder, run.config, ident, log, repair=False)[0] == "done"
        if force or not finished:
            raise
        log(f"[skip] {name}: finished (metrics.json; its folder is read-only: {e.strerror})")
        return "skipped", read_metrics(folder), folder
    orphans = remove_orphans(folder)  # we hold the lock: no live process writes here
    if orphans:
        log(
            f"[repair] {name}: removed {len(orphans)} temporary file(s) a killed process left: "
            f"{', '.join(str(p.relative_to(folder)) for p in orphans[:3])}"
        )
    state, reasons = status(folder, run.config, ident, log)
    if state == "done" and not force:
        log(f"[skip] {name}: finished (metrics.json); --force retrains it")
        return "skipped", read_metrics(folder), folder
    if state == "changed" and not force:
        more = f"; and {len(reasons) - 8} more" if len(reasons) > 8 else ""
        log(
            f"[changed] {name}: this folder trained something else ({'; '.join(reasons[:8])}{more}). "
            "It is neither reused nor resumed: pass --force to retrain it here, or --runs-dir to train "
            "elsewhere."
        )
        return "changed", None, folder
    if force and state != "new":
        clear(folder)
    open_segment(folder)  # before this invocation writes: a killed segment ends at its own last write
    held.enter_context(tee_output(folder))
    if state == "partial" and not force:
        log(f"[resume] {name}: unfinished, resuming from its checkpoints")
    write_atomic(folder / CONFIG, yaml.safe_dump(run.config, sort_keys=False))
    write_json_atomic(ident, folder / IDENTITY)
    log(f"[train] {name}")
    return "train", None, folder


def write_metrics(run: Run, folder: Path, result: dict) -> dict:
    """Measure the model and write metrics.json (atomically): the run is finished. wall_time_s
    sums every invocation that worked on the run (wall_time.json)."""
    stats = measure_model(run.config)
    segments = close_segment(folder)
    metrics = {
        "run": run.meta,
        "top1": result.get("top1"),
        "top5": result.get("top5"),
        "throughput": stats.get("throughput"),
        "params": stats.get("params"),
        "macs": stats.get("macs"),
        "train_time_s": result.get("train_time_s"),
        "wall_time_s": sum(end - start for start, end in segments),
        "wall_segments": len(segments),
        "model": stats,
        "train": result,
        "env": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(metrics, folder / METRICS)
    failure.clear(folder)  # an earlier attempt's failure is over
    return metrics
