"""A run's identity: everything that changes its result, and nothing that does not.

    ident = run_identity(cfg)          # {"config": {...}, "data_files": {...} | None}
    identity_diff(old, new)            # ["data.root: '/a' -> '/b'", ...]

A finished run is reused, and an unfinished one resumed, only when the identity stored in its
folder (identity.json) equals the identity asked for. The identity is the whole resolved config
without NEUTRAL_KEYS, with data.root as a resolved absolute path, plus for datasets read from a
folder a fingerprint of the file list (names, sizes, mtimes: cheap, and changes when files are
added, removed or rewritten). To make something else part of the identity (e.g. the hash of an
init checkpoint), add an entry in run_identity.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from pathlib import Path

# Where and how a run trains, not what it trains: a run started on one machine (or with other
# workers, threads, logging) is the same run. Keys derived from the world size (per-device batch,
# accumulation) belong here too: a run started on 8 GPUs resumes on 16.
# runtime.max_batch_per_device only splits the global batch (ablations/train/batching.py); <phase>.accum_iter
# is derived from it now, and is ignored where older config.yaml files still record it.
NEUTRAL_KEYS = (
    "data.num_workers", "data.download",
    "runtime.device", "runtime.log_every", "runtime.threads", "runtime.ckpt_every_steps",
    "runtime.max_batch_per_device", "pretrain.accum_iter", "finetune.accum_iter", "supervised.accum_iter",
    # how the memory is spent, not what is learned (ablations/train/memory_plan.py)
    "runtime.grad_ckpt", "runtime.compile", "runtime.plan", "runtime.sized_for_gib",
    "finetune.init",  # where the init checkpoint lies; its content (finetune.init_sha256) is identity
    "runtime.tensorboard",
)  # fmt: skip
# Keys added after runs existed, whose null reproduces those runs: left out of the identity while
# null, so runs finished before the key existed are still reused (and resumed).
ABSENT_WHEN_NULL = ("pretrain.train_size", "data.final_val_size")


def neutral_free(cfg: dict) -> dict:
    """cfg without NEUTRAL_KEYS, and without the ABSENT_WHEN_NULL keys that are null (a copy)."""
    cfg = copy.deepcopy(cfg)
    for key in NEUTRAL_KEYS + ABSENT_WHEN_NULL:
        head, _, leaf = key.rpartition(".")
        node = cfg
        for part in head.split(".") if head else []:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and (key in NEUTRAL_KEYS or node.get(leaf, 0) is None):
            node.pop(leaf, None)
    return cfg


def data_root(cfg: dict) -> str | None:
    """data.root as a resolved absolute path (None when the dataset has no folder)."""
    root = cfg["data"].get("root")
    return str(Path(os.path.expanduser(str(root))).resolve()) if root else None


@functools.cache
def files_fingerprint(root: str) -> dict:
    """{"files": count, "bytes": total, "sha1": hash of (relative path, size, mtime) of every file}
    under root (hidden files and folders skipped; a dangling link counts with size -1). One stat
    per file, no reading; cached for the process (ablate.py clears it at each start, so one
    invocation walks a dataset once however many runs use it)."""
    h, count, total, seen = hashlib.sha1(), 0, 0, set()
    for folder, dirs, files in os.walk(root, followlinks=True):  # linked class folders are common
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a link loop: each folder once
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, 0
            h.update(f"{os.path.relpath(path, root)}\0{size}\0{mtime}\n".encode())
            count, total = count + 1, total + max(size, 0)
    return {"files": count, "bytes": total, "sha1": h.hexdigest()[:16]}


def run_identity(cfg: dict) -> dict:
    """The identity of a resolved run config (JSON-serialisable)."""
    config = neutral_free(cfg)
    root = data_root(cfg)
    config["data"]["root"] = root
    return {"config": config, "data_files": files_fingerprint(root) if root and os.path.isdir(root) else None}


def identity_diff(old: dict, new: dict) -> list[str]:
    """What differs between two identities, one 'key: old -> new' per leaf."""
    out = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix[:-1]}: {a!r} -> {b!r}")

    walk(old.get("config", {}), new.get("config", {}), "")
    if old.get("data_files") != new.get("data_files"):
        was, now = _files(old.get("data_files")), _files(new.get("data_files"))
        out.append(f"data files under data.root: {was} -> {now}")
    return out


def _files(fp: dict | None) -> str:
    return "none" if not fp else f"{fp['files']} files, {fp['bytes']} bytes, fingerprint {fp['sha1']}"
