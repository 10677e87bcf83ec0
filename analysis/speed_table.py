"""Speeds of several models timed side by side: every model built once, then timed round-robin
over several rounds in a rotating order, so each sees the same machine load and none always goes
first. Each row's speed is its median over rounds; its ratio to the base row is the median of the
per-round ratios (both timed within seconds of each other), with the min-max of those ratios over
rounds as its spread. This is what Table 1's speed column, its plots and `ablate.py --bench` show;
the per-run throughput in metrics.json is only a record (timed minutes apart).

The rounds run in several fresh processes (bench.processes, default 3), pooled. One process's
rounds share its memory layout, allocator and thread placement, and min-max over them missed
between-process variation: a report timed inside the process that had just loaded every run gave
row f 1.60x [1.53-1.88] where two `--bench` runs gave 1.36x [1.17-1.50] and [1.24-1.40]. Fresh
processes also make the report's timing and `--bench`'s the same code path.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ablations.store.atomic import write_atomic
from ablations.study.runs import device_name, set_threads
from analysis.collect import paper_speedup
from analysis.tables import CONVENTIONS_LABEL, CONVENTIONS_NOTE, markdown, times, times_spread
from models.model_stats import build_model, input_shape, model_summary
from models.throughput import ATTN_BACKENDS, default_dtypes, measure_throughput

ROUNDS = 6  # a preset's bench.rounds overrides it
PROCESSES = 3  # bench.processes: the rounds are split over this many fresh processes


def time_side_by_side(
    models: dict[str, torch.nn.Module],
    base: str | None = None,
    rounds: int = ROUNDS,
    first_round: int = 0,
    **measure_kw,
) -> dict[str, dict]:
    """{label: {"throughput": median samples/s, "per_round": [...], "ratio", "ratio_low",
    "ratio_high"}} (ratios to `base`, NaN without one). Round r times the labels starting at
    position r (rotated; the first round is `first_round`, so rounds split over processes keep
    rotating). measure_kw go to models.throughput.measure_throughput (batch_sizes, dtype,
    device, warmup, iters, ...); input shapes are each model's own (C, *input_size)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    labels = list(models)
    per_round = {k: [] for k in labels}
    for r in range(first_round, first_round + rounds):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            m = models[label]
            per_round[label].append(measure_throughput(m, input_shape(m), **measure_kw))
    return summarize(per_round, base)


def summarize(per_round: dict[str, list[float]], base: str | None) -> dict[str, dict]:
    """time_side_by_side's record from {label: [samples/s per round]}, rounds aligned by index."""
    out = {}
    for label, speeds in per_round.items():
        ratios = [s / b for s, b in zip(speeds, per_round[base])] if base in per_round else [float("nan")]
        out[label] = {
            "throughput": statistics.median(speeds),
            "per_round": speeds,
            "ratio": statistics.median(ratios),
            "ratio_low": min(ratios),
            "ratio_high": max(ratios),
        }
    return out


def bench_settings(cfg: dict) -> dict:
    """The preset's bench settings and the device they run on (fp16 on GPU, fp32 on CPU)."""
    bench = cfg.get("bench") or {}
    cuda = torch.cuda.is_available() and cfg["runtime"]["device"] != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    return {
        "batch_sizes": list(bench.get("batch_sizes", (1, 8, 32))),
        "warmup": int(bench.get("warmup", 3)),
        "iters": int(bench.get("iters", 10)),
        "rounds": int(bench.get("rounds", ROUNDS)),
        "processes": int(bench.get("processes", PROCESSES)),
        "dtype": str(default_dtypes(device)[0]).removeprefix("torch."),
        "device": str(device),
    }


def table_speeds(configs: dict[str, dict], base: str = "mvitv2", attn_backend: str = "math") -> dict:
    """Side-by-side speeds of the classifiers of `configs` ({row: resolved run config}, all from
    one preset), at the first config's bench settings, attention under `attn_backend` ("math":
    the paper's protocol). The rounds are split over bench.processes fresh processes and pooled.
    Returns {"settings", "device_name", "threads", "date", "rows": {row: time_side_by_side's
    record}}."""
    first = next(iter(configs.values()))
    s = bench_settings(first)
    processes = max(1, min(s["processes"], s["rounds"]))
    shares = [s["rounds"] // processes + (p < s["rounds"] % processes) for p in range(processes)]
    per_round = {row: [] for row in configs}
    threads, name, start = None, None, 0
    for share in shares:
        job = {"configs": configs, "rounds": share, "first_round": start, "attn_backend": attn_backend}
        result = _run_worker(job)
        threads, name = result["threads"], result["device_name"]
        for row in configs:
            per_round[row] += result["per_round"][row]
        start += share
    return {
        "settings": {**s, "attn_backend": attn_backend},
        "device_name": name,  # as the timing processes saw it (their thread count)
        "threads": threads,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": summarize(per_round, base),
    }


def _run_worker(job: dict) -> dict:
    """Runs `job` in a fresh `python -m analysis.speed_table` and returns its JSON answer."""
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.speed_table"], input=json.dumps(job), capture_output=True,
        text=True, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        why = proc.stderr[-3000:]
        raise RuntimeError(f"side-by-side timing process failed (exit {proc.returncode}):\n{why}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker_main() -> None:
    """One timing process: builds every model once and times job["rounds"] rotating rounds."""
    job = json.loads(sys.stdin.read())
    configs = job["configs"]
    first = next(iter(configs.values()))
    set_threads(first)
    s = bench_settings(first)
    models = {row: build_model(cfg) for row, cfg in configs.items()}
    rows = time_side_by_side(
        models, None, job["rounds"], job["first_round"], batch_sizes=s["batch_sizes"],
        dtype=getattr(torch, s["dtype"]), device=s["device"], warmup=s["warmup"], iters=s["iters"],
        attn_backend=job["attn_backend"],
    )  # fmt: skip
    answer = {
        "threads": torch.get_num_threads(),
        "device_name": device_name(s["device"]),
        "per_round": {r: v["per_round"] for r, v in rows.items()},
    }
    print(json.dumps(answer))


def cache_key(configs: dict[str, dict]) -> dict:
    """What the timings depend on: each row's model and class count, and the bench settings."""
    first = next(iter(configs.values()))
    models = {
        row: {"model": c["model"], "num_classes": c["data"]["num_classes"]} for row, c in configs.items()
    }
    settings = bench_settings(first)
    threads = first["runtime"].get("threads")
    return {
        "models": models,
        "settings": settings,
        "device_name": device_name(settings["device"]),
        "threads": threads,
    }


def usable(speeds) -> bool:
    """A table_speeds record (a cache file that is not one is damaged: measured again)."""
    keys = ("settings", "device_name", "date", "rows")
    return isinstance(speeds, dict) and all(k in speeds for k in keys) and isinstance(speeds["rows"], dict)


def cached_table_speeds(configs: dict[str, dict], path: Path, base: str = "mvitv2") -> dict:
    """table_speeds, read from `path` (JSON) when it was measured for the same rows and settings;
    otherwise measured now and written there atomically."""
    key = json.loads(json.dumps(cache_key(configs)))
    path = Path(path)
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached, dict) and cached.get("key") == key and usable(cached):
                return cached
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # a damaged cache is measured again
    speeds = {"key": key, **table_speeds(configs, base)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(speeds, indent=1, sort_keys=True))
    return speeds


def bench_text(configs: dict[str, dict], attn_backend: str = "math") -> str:
    """`ablate.py --bench`: params, MACs and side-by-side speed of each entry's classifier
    ({entry: config}; seeds share one), as Markdown with a line saying how it was timed.
    attn_backend "both" times the table once with the math and once with the auto backend. Row
    mvitv2 is followed by "mvitv2 with Hiera conventions" (MACs only), the model between it and
    row a, so row a's MAC change is not credited to the positions."""
    backends = list(ATTN_BACKENDS) if attn_backend == "both" else [attn_backend]
    speeds = {b: table_speeds(configs, attn_backend=b) for b in backends}
    rows, conventions = [], False
    for entry, cfg in configs.items():
        stats = model_summary(cfg)
        step, modality = cfg["model"]["step"], cfg["model"]["modality"]
        timed = []
        for b in backends:
            side = speeds[b]["rows"][entry]
            timed += [
                f"{side['throughput']:.1f}",
                times_spread(side["ratio"], side["ratio_low"], side["ratio_high"]),
            ]
        size = [f"{stats['params'] / 1e6:.3f}", f"{stats['macs'] / 1e6:.1f}"]
        rows.append([entry, *size, *timed, times(paper_speedup(step, modality))])
        if "macs_hiera_conventions" in stats:
            conventions = True
            size = [
                f"{stats['params_hiera_conventions'] / 1e6:.3f}",
                f"{stats['macs_hiera_conventions'] / 1e6:.1f}",
            ]
            rows.append([f"{CONVENTIONS_LABEL} ({entry})", *size, *["–"] * (len(timed) + 1)])
    tag = {b: f" ({b})" if len(backends) > 1 else "" for b in backends}
    timed_head = [
        h for b in backends for h in (f"throughput (/s, median){tag[b]}", f"x mvitv2 [min-max]{tag[b]}")
    ]
    head = ["entry", "params (M)", "MMACs", *timed_head, "paper x mvitv2 (L, A100 fp16)"]
    s = speeds[backends[0]]["settings"]
    how = (
        f"Timed side by side on {speeds[backends[0]]['device_name']}: {s['rounds']} rounds in "
        f"{min(s.get('processes', 1), s['rounds'])} fresh processes, rotating order, "
        f"{s['dtype']}, best of batch sizes {s['batch_sizes']}, {s['warmup']} warmup + {s['iters']} "
        f"iterations; attention backend: {attn_backend} (math = the paper's protocol, no FlashAttention).\n\n"
    )
    return how + markdown(head, rows) + (CONVENTIONS_NOTE if conventions else "")


if __name__ == "__main__":
    _worker_main()
