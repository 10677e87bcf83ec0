"""`--seeds LO..HI` on the tiny preset with real training, killed (SIGKILL) while its first round
trains and rerun: it resumes the rounds and finishes. tests/test_seed_rounds.py covers the same
path with a fake trainer in the default suite; this one trains for real (about a minute)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLE = "name: duo\ntitle: two rows\nmode: supervised\nrows:\n  e: {}\n  f: {}\n"


@pytest.mark.slow
def test_rounds_on_tiny_survive_a_kill(tmp_path):
    (tmp_path / "duo.yaml").write_text(TABLE)
    cmd = [sys.executable, str(ROOT / "ablate.py"), "--table", str(tmp_path / "duo.yaml"), "--preset", "tiny",
           "--seeds", "2..3", "--resolve", "40", "--runs-dir", str(tmp_path / "runs"), "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while not list((tmp_path / "runs").glob("fig8/*/image/tiny/seed0/metrics.json")):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-round: one run finished, the others not
    proc.wait(timeout=60)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "== rounds (--seeds 2..3): round 1:" in done.stdout and "rounds done after round" in done.stdout
    status = subprocess.run(
        cmd + ["--status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0 and "rounds done" in status.stdout and "build " in status.stdout
