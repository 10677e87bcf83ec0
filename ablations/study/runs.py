"""Run folders: runs/<table>/<entry>/<modality>/<variant>/seed<k>/.

Each holds config.yaml (the resolved config), identity.json (what the result depends on:
ablations/study/identity.py), the engine's <phase>/ folders (logs, resumable checkpoints, done.json),
wall_time.json (the wall-clock segments of every invocation that worked on it) and metrics.json,
written atomically once the run has finished. A run is finished when metrics.json exists and
identity.json equals the identity asked for; a run whose identity changed is never reused or
resumed (--force retrains it). A folder is trained by one process at a time (ablations/store/lock.py).
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
from ablations.study import failure
from ablations.study.config import Run
from ablations.study.identity import identity_diff, run_identity
from ablations.study.provenance import git_state
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


def run_dir(runs_dir: Path, run: Run) -> Path:
    return Path(runs_dir) / run.name


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
    if not folder.exists() or all(p.name in (LOCK, JOBS, failure.FILE) for p in folder.iterdir()):
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
    if why != MISSING:
        log(f"[repair] {folder / METRICS} {why}: rebuilding it from the phases' done.json")
    return "partial", []


def clear(folder: Path) -> None:
    """Delete everything in a run folder but its lock and cluster job logs (for --force)."""
    for p in folder.iterdir():
        if p.name in (LOCK, JOBS):
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
        **git_state(),
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
    folder = run_dir(runs_dir, run)
    with ExitStack() as held:  # rank 0's lock and log stay held until the run is done
        outcome, metrics = D.main_only(claim, held, run, runs_dir, force, log)
        if outcome != "train":
            return outcome, metrics
        set_threads(run.config)
        result = D.agreed(run_training, run.config, folder, progress=progress)
        return "trained", D.main_only(write_metrics, run, folder, result)


def claim(held: ExitStack, run: Run, runs_dir: Path, force: bool, log=print) -> tuple[str, dict | None]:
    """Take the run's lock (kept on `held`) and decide: ('train', None), ('skipped', metrics),
    ('changed', None) or ('locked', None). Clears the folder for --force, writes config.yaml and
    identity.json, and opens a wall-clock segment."""
    folder = run_dir(runs_dir, run)
    ident = run_identity(run.config)
    try:
        held.enter_context(exclusive(folder / LOCK, holder="another process training it", log=log))
    except RunLocked as e:
        log(
            f"[busy] {run.name}: being trained by another process ({e}); skipped. Rerun the same "
            "command once it has finished to report it."
        )
        return "locked", None
    except OSError as e:  # a read-only disk: a finished run needs no lock to be reported
        finished = e.errno in READ_ONLY and status(folder, run.config, ident, log, repair=False)[0] == "done"
        if force or not finished:
            raise
        log(f"[skip] {run.name}: finished (metrics.json; its folder is read-only: {e.strerror})")
        return "skipped", read_metrics(folder)
    orphans = remove_orphans(folder)  # we hold the lock: no live process writes here
    if orphans:
        log(
            f"[repair] {run.name}: removed {len(orphans)} temporary file(s) a killed process left: "
            f"{', '.join(str(p.relative_to(folder)) for p in orphans[:3])}"
        )
    state, reasons = status(folder, run.config, ident, log)
    if state == "done" and not force:
        log(f"[skip] {run.name}: finished (metrics.json); --force retrains it")
        return "skipped", read_metrics(folder)
    if state == "changed" and not force:
        more = f"; and {len(reasons) - 8} more" if len(reasons) > 8 else ""
        log(
            f"[changed] {run.name}: this folder trained something else ({'; '.join(reasons[:8])}{more}). "
            "It is neither reused nor resumed: pass --force to retrain it here, or --runs-dir to train "
            "elsewhere."
        )
        return "changed", None
    if force and state != "new":
        clear(folder)
    open_segment(folder)  # before this invocation writes: a killed segment ends at its own last write
    held.enter_context(tee_output(folder))
    if state == "partial" and not force:
        log(f"[resume] {run.name}: unfinished, resuming from its checkpoints")
    write_atomic(folder / CONFIG, yaml.safe_dump(run.config, sort_keys=False))
    write_json_atomic(ident, folder / IDENTITY)
    log(f"[train] {run.name}")
    return "train", None


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
