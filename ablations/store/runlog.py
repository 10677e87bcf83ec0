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


class _Copy:
    """The log file, written best effort: when it cannot be written (a full disk) the copy stops
    with one note on the terminal and the run goes on (its next checkpoint says what is wrong)."""

    def __init__(self, file, path: Path, stream):
        self.file, self.path, self.stream = file, path, stream

    def write(self, text: str) -> None:
        if self.file is None:
            return
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as e:
            self.file = None
            self.stream.write(f"[note] {self.path}: {e.strerror or e}; the log copy stops here\n")


class _Tee:
    """A text stream that writes to `stream` and to the log copy (flushed: logs must survive a kill)."""

    def __init__(self, stream, copy: _Copy):
        self.stream, self.copy = stream, copy

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.copy.write("")
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
    copy = _Copy(f, path, out)
    copy.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
    sys.stdout, sys.stderr = _Tee(out, copy), _Tee(err, copy)
    try:
        yield
    except KeyboardInterrupt as e:  # interrupt.Stopped included: a stop, not a crash
        copy.write(f"[stopped] {e} {getattr(e, 'signal', '')}\n")
        raise
    except BaseException as e:
        copy.write("".join(traceback.format_exception(e)))
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        try:
            f.close()
        except OSError:  # the buffered rest cannot be written either (full disk): the log ends here
            pass
