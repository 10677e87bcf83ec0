"""Ctrl-C that keeps finished work: the first SIGINT lets the current optimizer update finish,
the training loop then writes a checkpoint at that exact step and stops; a second SIGINT stops at
once (the last checkpoint on disk still resumes, losing the steps since)."""

from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    """Context manager; `requested` turns True on the first Ctrl-C while it is active.

    Only installs its handler in the main thread and when `enabled` (single-process runs: under
    DDP every rank would have to stop at the same step, so multi-GPU runs keep Python's default
    and resume from their last checkpoint)."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.requested, self._prev = enabled, False, None

    def __enter__(self) -> StopRequest:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            self._prev = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nCtrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )


class Stopped(KeyboardInterrupt):
    """Raised by the training loop after it saved a checkpoint on request."""
