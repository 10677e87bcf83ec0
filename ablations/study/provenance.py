"""Which build trained a run: the git commit, whether the tree was dirty (and a hash of the
difference, so two dirty runs can be told apart), recorded in metrics.json's "env" with the
torch, timm and Python versions; `build_label` names a build in reports and --status."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _git(*args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, timeout=20, cwd=HERE)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict:
    """{"git_commit", "git_dirty", "git_diff_sha256"}: dirty when tracked files differ from the
    commit or untracked files are not ignored; the hash covers `git diff HEAD --binary` and the
    untracked files' names and contents. None values where git (or the repository) is missing."""
    commit = _git("rev-parse", "HEAD")
    porcelain = _git("status", "--porcelain", "--untracked-files=all")
    if commit is None or porcelain is None:
        return {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}
    dirty = bool(porcelain.strip())
    digest = None
    if dirty:
        h = hashlib.sha256(_git("diff", "HEAD", "--binary") or b"")
        root = Path((_git("rev-parse", "--show-toplevel") or b".").decode().strip())
        for line in sorted(porcelain.decode(errors="replace").splitlines()):
            if line.startswith("?? "):
                path = root / line[3:]
                h.update(line.encode())
                if path.is_file():
                    h.update(path.read_bytes())
        digest = h.hexdigest()
    return {"git_commit": commit.decode().strip() or None, "git_dirty": dirty, "git_diff_sha256": digest}


@functools.cache
def build_at_start() -> dict:
    """git_state() as it was when this process first asked: ablate.py asks before any work, so a
    run is labelled with the tree its code was loaded from, not one edited or committed while it
    trained (a run's metrics.json is written when it finishes, hours later on a cluster)."""
    return git_state()


def build_label(env: dict | None) -> str:
    """'abc1234', 'abc1234+dirty:9f3e01' or 'abc1234 (dirty flag not recorded)'; 'unknown'."""
    env = env if isinstance(env, dict) else {}
    commit = env.get("git_commit")
    if not commit:
        return "unknown build"
    label = str(commit)[:7]
    if "git_dirty" not in env:
        return f"{label} (dirty flag not recorded)"
    if env.get("git_dirty"):
        return f"{label}+dirty:{str(env.get('git_diff_sha256') or '')[:6]}"
    return label


def is_clean(label: str) -> bool:
    """A label of a committed tree (no dirty mark, and the flag was recorded)."""
    return label != "unknown build" and "dirty" not in label


def build_flags(labels) -> str:
    """What a reader must know of a set of build labels: 'mixed builds', 'dirty tree', 'build not
    recorded' (comma-joined), or '' for one recorded, clean build."""
    labels = sorted({str(x) for x in labels if isinstance(x, str) and x})
    flags = ["mixed builds"] * (len(labels) > 1)
    flags += ["dirty tree"] * any("+dirty" in x for x in labels)
    flags += ["build not recorded"] * any(x == "unknown build" or "not recorded" in x for x in labels)
    return ", ".join(flags)
