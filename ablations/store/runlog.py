"""Each run folder keeps its own log: everything printed while a run is trained (decisions,
progress lines, warnings, errors) is also appended to <run>/train.log, across resumes, so a run
trained by a batch job can be read without hunting for the job's output file."""

from __future__ import annotations

import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

LOG = "train.log"


class _Tee:
    """A text stream that writes to `stream` and to `file` (flushing both: logs must survive a kill)."""

    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def __getattr__(self, name):  # encoding, fileno, ... of the real stream
        return getattr(self.stream, name)


@contextmanager
def tee_output(folder: Path):
    """Copy sys.stdout and sys.stderr to folder/train.log (append) while the block runs; an
    exception leaving the block is written there too (the caller reports it on the terminal)."""
    with open(Path(folder) / LOG, "a", buffering=1) as f:
        f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, f), _Tee(err, f)
        try:
            yield
        except KeyboardInterrupt as e:  # interrupt.Stopped included: a stop, not a crash
            f.write(f"[stopped] {e} {getattr(e, 'signal', '')}\n")
            raise
        except BaseException as e:
            f.write("".join(traceback.format_exception(e)))
            raise
        finally:
            sys.stdout, sys.stderr = out, err
