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
    """A text stream that writes to `stream` and to `file` (flushing both: logs must survive a kill).
    The copy is best effort: when the file cannot be written (a full disk), it stops with one note
    on the stream, and the run goes on (its next checkpoint then says what is wrong, in one line)."""

    def __init__(self, stream, file, path: Path):
        self.stream, self.file, self.path = stream, file, path

    def copy(self, text: str) -> None:
        if self.file is None:
            return
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as e:
            self.file = None
            self.stream.write(f"[note] {self.path}: {e.strerror or e}; the log copy stops here\n")

    def write(self, text: str) -> int:
        self.copy(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.copy("")
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def __getattr__(self, name):  # encoding, fileno, ... of the real stream
        return getattr(self.stream, name)


@contextmanager
def tee_output(folder: Path):
    """Copy sys.stdout and sys.stderr to folder/train.log (append) while the block runs; an
    exception leaving the block is written there too (the caller reports it on the terminal)."""
    path = Path(folder) / LOG
    f = open(path, "a", buffering=1)
    out, err = sys.stdout, sys.stderr
    tee_out = _Tee(out, f, path)
    tee_out.copy(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
    tee_err = _Tee(err, tee_out.file, path)
    sys.stdout, sys.stderr = tee_out, tee_err
    try:
        yield
    except KeyboardInterrupt as e:  # interrupt.Stopped included: a stop, not a crash
        tee_out.copy(f"[stopped] {e} {getattr(e, 'signal', '')}\n")
        raise
    except BaseException as e:
        tee_out.copy("".join(traceback.format_exception(e)))
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        try:
            f.close()
        except OSError:  # the buffered rest cannot be written either (full disk): the log ends here
            pass
