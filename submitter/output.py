"""rake-submit's stdout and stderr: written in the order given, each line of ours on a line
of its own, and (for the real ones) from a thread of their own.

A reader that does not keep up (a pager left waiting, Ctrl-S on a terminal, a CI pipe
backed up) blocks a write. Done on the loop, that write would stop the heartbeats: the
broker would drop us after its liveness window and kill our running actions, to run them
again, and a minute later we would give the broker up (exit 69). The loop only queues;
the thread waits for the reader. Only a backlog past MAX_BACKLOG makes the loop wait too.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from typing import BinaryIO

from submitter.spool import Spool

MAX_BACKLOG = 256 << 20   # bytes queued for a reader that does not read
MAX_SPOOLS = 32           # capture files queued (each an open descriptor and its disk space)


class Output:
    def __init__(self, out: BinaryIO, err: BinaryIO, threaded: bool = False):
        self.streams = {"out": out, "err": err}
        for stream in (out, err):   # what Python buffered before must come first
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # Both to one place (a terminal, 2>&1): a line of ours must follow a partial line
        # of either; otherwise only of its own stream.
        self.place = {"out": "err" if _same_file(out, err) else "out", "err": "err"}
        self.at_line_start = {"out": True, "err": True}
        self.unwritable: str | None = None   # why our output could not be written (a full disk)
        self.pending: deque = deque()
        self.backlog = 0
        self.spools = 0   # Spools queued or being written: not in `backlog`, but not free
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        if threaded:
            self.thread = threading.Thread(target=self._serve, name="rake-output", daemon=True)
            self.thread.start()

    def write(self, name: str, data: bytes, ours: bool = False) -> None:
        """`data` to stream `name` ("out" or "err"); `ours`: a line or status line of rake's
        own, which starts at the beginning of a line (as ninja's output does)."""
        if self.thread is None:
            return self._write(name, data, ours)
        with self.cond:
            while ((self.backlog > MAX_BACKLOG or self.spools >= MAX_SPOOLS and isinstance(data, Spool))
                   and self.thread.is_alive()):
                self.cond.wait(1.0)
            self.pending.append((name, data, ours))
            self.backlog += _held(data)
            self.spools += isinstance(data, Spool)
            self.cond.notify_all()

    def drain(self) -> None:
        """Wait until everything given has been written (or could not be)."""
        thread, self.thread = self.thread, None   # once: a signal may cut this wait short
        if thread is None:
            return
        with self.cond:
            self.pending.append(None)
            self.cond.notify_all()
        while thread.is_alive():   # in steps: a signal a helper thread took is acted on meanwhile
            thread.join(0.1)       # (the reader of our output may have stopped reading)

    def _serve(self) -> None:
        while True:
            with self.cond:
                while not self.pending:
                    self.cond.wait()
                item = self.pending.popleft()
                if item is not None:
                    self.backlog -= _held(item[1])
                self.cond.notify_all()
            if item is None:
                return
            self._write(*item)
            if isinstance(item[1], Spool):   # its descriptor and its disk space are free now
                with self.cond:
                    self.spools -= 1
                    self.cond.notify_all()

    def _write(self, name: str, data: bytes, ours: bool) -> None:
        place = self.place[name]
        if ours and not self.at_line_start[place]:
            data = b"\n" + data
        if not data:
            return
        ends_line = data.endswith(b"\n")   # before _put: a Spool is closed once written
        self._put(name, data)
        # A status line is ours and cleared before anything else is written.
        self.at_line_start[place] = ours or ends_line

    def _put(self, name: str, data: bytes) -> None:
        """One that cannot take it (a full disk) is said once, on stderr, and fails the run
        (as make's "write error"); a reader gone (`| head`) is not."""
        stream = self.streams[name]
        try:
            if isinstance(data, Spool):   # in pieces, as they are read: never all in memory
                with contextlib.closing(data.pieces()) as pieces:
                    for piece in pieces:
                        _write_all(stream, piece)
            else:
                _write_all(stream, data)
        except (BrokenPipeError, ValueError):
            self.streams[name] = _silence(stream)
        except OSError as e:
            self.streams[name] = _silence(stream)
            if self.unwritable is None:
                self.unwritable = f"cannot write to {'stdout' if name == 'out' else 'stderr'}: {e.strerror}"
                if name == "out":
                    self._put("err", f"rake: error: {self.unwritable}\n".encode())


def _held(data) -> int:
    """Bytes of `data` held in memory (a Spool's are in its file)."""
    return 0 if isinstance(data, Spool) else len(data)


def _write_all(stream: BinaryIO, data: bytes) -> None:
    """To the descriptor itself where there is one: a thread blocked in a write must hold
    no lock of Python's buffered stream, which the interpreter takes again at exit (a run
    interrupted while a reader does not read must still end)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):   # BytesIO in tests
        stream.write(data)
        stream.flush()
        return
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:   # left non-blocking by whoever gave it to us (a CI runner)
            select.select([], [fd], [])


def _same_file(a: BinaryIO, b: BinaryIO) -> bool:
    try:
        x, y = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (OSError, ValueError, AttributeError):   # BytesIO in tests: no descriptor
        return False
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def _silence(stream: BinaryIO) -> BinaryIO:
    """Nothing more is shown. The real fd is pointed at /dev/null so Python's own flush at
    exit does not complain either."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, stream.fileno())
    except (OSError, ValueError):
        pass
    os.close(null)
    return open(os.devnull, "wb")
