"""Stop requests that keep finished work: Ctrl-C (SIGINT), and the signals a batch system sends
before it preempts a job or its time runs out (SIGUSR1, asked for with sbatch --signal=USR1@90;
SIGTERM). The first one lets the current optimizer update finish, the training loop then writes
a checkpoint at that exact step and stops; a second one stops at once (the last checkpoint on
disk still resumes, losing the steps since).

ablate.py then exits with 128 + the signal number (`exit_code`): 130 for Ctrl-C, 138 for
SIGUSR1, 143 for SIGTERM. A Slurm job (ablations/launch/job.py) requeues itself on 138; on 143
Slurm itself requeues preempted jobs (or the job was cancelled)."""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGUSR1, signal.SIGTERM)
# The signal behind the last stop request of this process (Stopped reports it).
_received: signal.Signals | None = None


class StopRequest:
    """Context manager; `requested` turns True on the first stop signal while it is active.

    Only installs its handlers in the main thread and when `enabled` (single-process runs: under
    DDP every rank would have to stop at the same step, so multi-GPU runs keep the handlers they
    had and resume from their last checkpoint). The handlers it replaced (Python's, or submitit's
    requeue handler in a cluster job) come back on exit."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.requested, self._prev = enabled, False, {}

    def __enter__(self) -> StopRequest:
        global _received
        _received = None
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._prev = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, prev in self._prev.items():
            signal.signal(s, prev)
        self._prev = {}

    def _handle(self, signum, frame) -> None:
        global _received
        if self.requested:
            raise KeyboardInterrupt
        self.requested, _received = True, signal.Signals(signum)
        what = "Ctrl-C" if signum == signal.SIGINT else _received.name
        print(
            f"\n{what}: finishing this step, then saving a checkpoint (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )


class Stopped(KeyboardInterrupt):
    """Raised by the training loop after it saved a checkpoint on request; `signal` is what asked."""

    def __init__(self, *args):
        super().__init__(*args)
        self.signal = _received or signal.SIGINT


def exit_code(stop: KeyboardInterrupt) -> int:
    """128 + the number of the signal that stopped the run (SIGINT for a plain KeyboardInterrupt)."""
    return 128 + int(getattr(stop, "signal", signal.SIGINT))
