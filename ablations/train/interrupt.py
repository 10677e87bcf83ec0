"""Stopping that keeps finished work: Ctrl-C (SIGINT), SIGTERM, and SIGUSR1 (what Slurm/submitit
send before a time limit or preemption).

- Inside the training loop (`StopRequest.listening()`: the loop polls the request after every
  update) the first signal lets the current optimizer update finish; the loop then writes a
  checkpoint at that exact step and raises `Stopped`. Under DDP the ranks agree on that step with
  one collective per update (`StopRequest.agreed`: a 1-element all_reduce MAX of the local flag
  over the gloo control group, well under a millisecond), so a signal that reaches only one rank
  still stops every rank at the same step.
- Anywhere else (a data scan, a model build, measuring a model, writing the report) nothing
  would ever poll the request, so the signal raises `Stopped` at once: every write is atomic,
  so nothing half-written is left, and the checkpoints on disk still resume.
- A second signal this process receives always stops at once (the last checkpoint on disk
  still resumes, losing the steps since).

Exit codes of ablate.py (ablations.cli.main): INTERRUPTED_EXIT (130) after SIGINT;
PREEMPTED_EXIT (75, sysexits' EX_TEMPFAIL: "try again later") after SIGTERM or SIGUSR1, which a
batch-system wrapper turns into a requeue. Rerunning the same command resumes bit-identically.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

import torch
import torch.distributed as dist

from ablations.train.distributed import control_group, is_dist

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: stopped for the batch system; requeue and rerun to resume
# Handled signals, by priority: when ranks saw different ones, the preemption signals win.
SIGNALS = {"SIGINT": 1, "SIGTERM": 2, "SIGUSR1": 3}


def exit_code(signal_name: str) -> int:
    return INTERRUPTED_EXIT if signal_name == "SIGINT" else PREEMPTED_EXIT


class Stopped(KeyboardInterrupt):
    """Raised by the training loop after it saved a checkpoint on request. `signal` names the
    signal that asked for it ("SIGINT", "SIGTERM" or "SIGUSR1")."""

    def __init__(self, message: str = "", signal: str = "SIGINT"):
        super().__init__(message)
        self.signal = signal


class StopRequest:
    """Context manager; `signal` turns to the first handled signal's name while it is active.

    Installs its handlers only in the main thread (Python delivers signals there) and puts the
    previous ones back on exit. Nested use shares the outermost request: ablate.py holds one for
    all its runs (a signal between phases or while metrics are written is not lost, and SIGUSR1's
    default action, termination, never applies), and each training phase enters it again."""

    _active: StopRequest | None = None  # the outermost request in force

    def __init__(self, enabled: bool = True):
        self.enabled, self.signal, self._prev = enabled, None, {}
        self.received = 0  # signals this process received (not the ones other ranks voted)
        self._listening = 0  # > 0 while a training loop polls the request after every update

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if StopRequest._active is not None:
            return StopRequest._active
        if self.enabled and threading.current_thread() is threading.main_thread():
            for name in SIGNALS:
                self._prev[name] = signal.signal(getattr(signal, name), self._handle)
            # A blocked signal mask is inherited through fork/exec from whatever started us.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [getattr(signal, n) for n in SIGNALS])
            StopRequest._active = self
        return self

    def __exit__(self, *exc) -> None:
        if StopRequest._active is not self:
            return
        for name, prev in self._prev.items():
            signal.signal(getattr(signal, name), prev)
        self._prev, StopRequest._active = {}, None

    @contextmanager
    def listening(self):
        """The block polls `agreed()` after every update (the training loop): a first signal waits
        for it. A signal still pending when the block ends normally stops there."""
        self._listening += 1
        try:
            yield self
        finally:
            self._listening -= 1
        if self.signal is not None and self.received and not self._listening:
            raise Stopped(f"{self.signal} while the loop ended", self.signal)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self.received += 1
        if self.received > 1:
            raise Stopped(f"stopped at once by a second signal ({name})", name)
        if self.signal is None or SIGNALS[name] > SIGNALS[self.signal]:
            self.signal = name
        if not self._listening:  # nothing would poll the request: stop here
            raise Stopped(f"{name} outside a training step", self.signal)
        again = " (Ctrl-C again to stop at once)" if name == "SIGINT" else " (again to stop at once)"
        print(f"\n{name}: finishing this step, then saving a checkpoint{again}", file=sys.stderr, flush=True)

    def agreed(self) -> str | None:
        """The signal any rank received (the highest-priority one), the same on every rank; None if
        none did. A collective under DDP: every rank calls it at the same update."""
        if not is_dist():
            return self.signal
        code = torch.tensor([SIGNALS.get(self.signal, 0)], dtype=torch.int32)
        dist.all_reduce(code, op=dist.ReduceOp.MAX, group=control_group())
        agreed = {v: k for k, v in SIGNALS.items()}.get(int(code.item()))
        # A signal that arrived during the all_reduce is kept for the next call, not overwritten
        # (ranks wait inside this collective much of the time, so scancel's USR1 often lands there
        # on every rank); this call returns only what every rank saw, so they stay in step.
        if agreed is not None and (self.signal is None or SIGNALS[agreed] > SIGNALS[self.signal]):
            self.signal = agreed
        return agreed
