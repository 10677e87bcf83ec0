"""Run folders: runs/<table>/<entry>/<modality>/<variant>/seed<k>/.

Each holds config.yaml (the resolved config), the engine's <phase>/ folders (logs, resumable
checkpoints) and metrics.json, written atomically once the run has finished. A run is finished
when metrics.json exists and config.yaml equals the config asked for; a folder is trained by one
process at a time (an flock on its .lock file).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from ablations import distributed as D
from ablations.config import Run, comparable, flat_keys, get_dotted
from ablations.runlog import tee_output

LOCK, CONFIG, METRICS = ".lock", "config.yaml", "metrics.json"


class RunLocked(RuntimeError):
    """Another process holds this run's lock."""


def run_dir(runs_dir: Path, run: Run) -> Path:
    return Path(runs_dir) / run.name


@contextmanager
def locked(folder: Path):
    """Hold an exclusive, non-blocking flock on folder/.lock; RunLocked if another process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{folder} is being trained by another process") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside path, fsync, then rename: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_config(folder: Path) -> dict | None:
    path = folder / CONFIG
    return yaml.safe_load(path.read_text()) if path.exists() else None


def read_metrics(folder: Path) -> dict | None:
    path = folder / METRICS
    return json.loads(path.read_text()) if path.exists() else None


def config_diff(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ (leaves only)."""
    keys = sorted(set(flat_keys(old)) | set(flat_keys(new)))
    out = []
    for k in keys:
        a, b = _get(old, k), _get(new, k)
        if a != b and not (isinstance(a, dict) and isinstance(b, dict)):
            out.append(f"{k}: {a!r} -> {b!r}")
    return out


def _get(tree, key):
    try:
        return get_dotted(tree, key)
    except (KeyError, TypeError):
        return "<absent>"


def status(runs_dir: Path, run: Run) -> str:
    """'done' | 'changed' (config.yaml differs) | 'partial' (started, unfinished) | 'new'."""
    folder = run_dir(runs_dir, run)
    old = read_config(folder)
    if old is None:
        return "new"
    if comparable(old) != comparable(run.config):
        return "changed"
    return "done" if (folder / METRICS).exists() else "partial"


def clear(folder: Path) -> None:
    """Delete everything in a run folder but its lock (for --force)."""
    for p in folder.iterdir():
        if p.name == LOCK:
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


# ----------------------------------------------------------------------------- the call sites
# Tests replace these two with fast fakes (monkeypatch ablations.runs.run_training / measure_model).


def run_training(cfg: dict, folder: Path, progress: bool | str = True) -> dict:
    from ablations.train import run_training as train

    return train(cfg, folder, progress=progress)


def measure_model(cfg: dict) -> dict:
    """Params, MACs (one sample) and inference throughput of the run's classifier on this machine."""
    import torch

    from analysis.model_stats import build_model, input_shape, model_summary
    from analysis.throughput import default_dtypes, measure_throughput

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
            warmup=bench.get("warmup", 3), iters=bench.get("iters", 10),
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
        import torch

        torch.set_num_threads(int(threads))


def device_name(device=None) -> str:
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment() -> dict:
    import timm
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "git_commit": commit,
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
    (finished before), 'locked' (another process has it) or 'changed' (config differs; needs --force).
    Exceptions from training propagate; metrics.json is then not written.

    Under torchrun every rank calls this with the same run: rank 0 alone takes the lock, decides,
    writes files and copies its output to <run>/train.log; the other ranks get its decision and
    train with it. An error on any rank is raised on every rank (distributed.agreed)."""
    folder = run_dir(runs_dir, run)
    with ExitStack() as held:  # rank 0's lock and log stay held until the run is done
        outcome, metrics = D.main_only(claim, held, run, runs_dir, force, log)
        if outcome != "train":
            return outcome, metrics
        set_threads(run.config)
        t0 = time.perf_counter()
        result = D.agreed(run_training, run.config, folder, progress=progress)
        return "trained", D.main_only(write_metrics, run, folder, result, time.perf_counter() - t0)


def claim(held: ExitStack, run: Run, runs_dir: Path, force: bool, log=print) -> tuple[str, dict | None]:
    """Take the run's lock (kept on `held`) and decide: ('train', None), ('skipped', metrics),
    ('changed', None) or ('locked', None). Clears the folder for --force and writes config.yaml."""
    folder = run_dir(runs_dir, run)
    try:
        held.enter_context(locked(folder))
    except RunLocked:
        log(f"[busy] {run.name}: being trained by another process; skipped")
        return "locked", None
    state = status(runs_dir, run)
    if state == "done" and not force:
        log(f"[skip] {run.name}: finished (metrics.json); --force retrains it")
        return "skipped", read_metrics(folder)
    if state == "changed" and not force:
        diff = config_diff(comparable(read_config(folder)), comparable(run.config))
        log(
            f"[changed] {run.name}: its config.yaml differs from this config "
            f"({'; '.join(diff[:5])}). Pass --force to retrain it here, "
            "or --runs-dir to train elsewhere."
        )
        return "changed", None
    if force and state != "new":
        clear(folder)
    held.enter_context(tee_output(folder))
    if state == "partial" and not force:
        log(f"[resume] {run.name}: unfinished, resuming from its checkpoints")
    write_atomic(folder / CONFIG, yaml.safe_dump(run.config, sort_keys=False))
    log(f"[train] {run.name}")
    return "train", None


def write_metrics(run: Run, folder: Path, result: dict, wall: float) -> dict:
    """Measure the model and write metrics.json (atomically): the run is finished."""
    stats = measure_model(run.config)
    metrics = {
        "run": run.meta,
        "top1": result.get("top1"),
        "top5": result.get("top5"),
        "throughput": stats.get("throughput"),
        "params": stats.get("params"),
        "macs": stats.get("macs"),
        "train_time_s": result.get("train_time_s"),
        "wall_time_s": wall,
        "model": stats,
        "train": result,
        "env": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_atomic(folder / METRICS, json.dumps(metrics, indent=1, sort_keys=True, default=str))
    return metrics
