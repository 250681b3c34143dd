"""What rake-submit prints: each action's raw output as one block, failures, notes, the
status line on a terminal, the job log and the closing summary."""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
import time
from typing import BinaryIO

from submitter.joblog import JobLog, exit_columns
from submitter.output import Output
from submitter.progress import Progress
from submitter.rakefile import Action, Rakefile
from submitter.terminal import BOLD, GREEN, RED, YELLOW, StatusLine, paint


def describe_end(status: str, code: int, timeout: float | None = None) -> str:
    """The bracketed part of a FAILED line: [code=N], [signal=N], [timeout], ..."""
    if status == "exited":
        return f"[code={code}]"
    if status == "signalled":
        return f"[signal={code}]"
    if status == "timeout":
        return f"[timeout after {timeout:g}s]" if timeout else "[timeout]"
    return f"[{status}]"


class Reporter:
    """Writes to the real stdout/stderr as bytes, whole blocks at a time, so nothing interleaves.

    `status`: draw the status line on stderr (a smart terminal, not -q); `color`: colour the
    FAILED, warning, error and summary tags. Without both, no escape code is ever written.
    """

    def __init__(self, verbose: bool = False, quiet: bool = False,
                 out: BinaryIO | None = None, err: BinaryIO | None = None,
                 color: bool = False, status: bool = False, joblog: JobLog | None = None,
                 threaded: bool = False):
        """`threaded`: written from a thread of their own (submitter/output.py says why)."""
        self.verbose, self.quiet, self.color = verbose, quiet, color
        self.out = out or _stream(sys.stdout)
        self.err = err or _stream(sys.stderr, closed=open(os.devnull, "wb"))
        self.output = Output(self.out, self.err, threaded)
        self.status = StatusLine(self.err, lambda data: self.output.write("err", data, ours=True)) \
            if status and not quiet else None
        self.joblog = joblog
        self.progress = Progress(began=time.monotonic())

    @property
    def unwritable(self) -> str | None:
        """Why our output or job log could not be written (a full disk); known for sure after close()."""
        return self.output.unwritable or (self.joblog.failed if self.joblog else None)

    def begin(self, rakefile: Rakefile) -> None:
        """The run starts: count its actions for `[done/total]` and the job log's Seq."""
        self.progress.begin(rakefile, time.monotonic())

    def action_ended(self, number: int, action: Action, where: str, status: str, code: int,
                     stdout: bytes, stderr: bytes, timeout: float | None = None,
                     received: int = 0, why: str = "", truncated: tuple = (), refused: str = "") -> None:
        """`why`: the worker's reason (a limit it enforced); `truncated`: streams it cut;
        `refused`: why its outputs are not there ("outputs refused" or "outputs lost": said by
        the caller), so it counts as failed."""
        ok = status == "exited" and code == 0
        self._ended(action, where, ok and not refused, received, exit_columns(status, code))
        if not ok or refused:
            end = describe_end(status, code, timeout) if not ok else f"[{refused}]"
            self._line(f"{paint('FAILED:', RED + ';' + BOLD, self.color)} {end} "
                       f"{action.command} (actionset {number}, line {action.line}, on {where})"
                       + (f": {why}" if why else ""), redraw=False)
        elif self.verbose:
            self._line(f"rake: done on {where}: {action.command} (line {action.line})", redraw=False)
        self._block(stdout, stderr)
        for stream, data in (("stdout", stdout), ("stderr", stderr)):
            if stream in truncated:
                self._line(f"rake: line {action.line}: [{stream} truncated at {len(data)} bytes by {where}]")

    def action_failed(self, number: int, action: Action, message: str) -> None:
        running = self.progress.running.get(action.line)
        self._ended(action, running.where if running else "-", False, 0, (-1, 0))
        self._line(f"{paint('FAILED:', RED + ';' + BOLD, self.color)} {action.command} "
                   f"(actionset {number}, line {action.line}): {message}")

    def withdrawn(self, action: Action) -> None:
        """Its job was taken back before it ran: it counts as not run."""
        self.progress.running.pop(action.line, None)

    def started(self, action: Action, where: str, sent: int = 0, remote: bool = False) -> None:
        self.progress.start(action, where, sent, time.monotonic(), time.time())
        if self.verbose:   # a remote one may wait in the worker's queue: say what we know
            verb = "sent to" if remote else "start on"
            self._line(f"rake: {verb} {where}: {action.command} (line {action.line})")
        else:
            self._redraw()

    def interrupted(self, signum: int, remote: int) -> None:
        """What stopped the run, as make's `*** ... Interrupt` and ninja's "interrupted by
        user": even under -q, which leaves out the summary that would otherwise be all."""
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        cancelled = f": {remote} remote {'action' if remote == 1 else 'actions'} cancelled" if remote else ""
        self._line(f"rake: {paint('interrupted', RED, self.color)} by {name}{cancelled}")

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(f"rake: {text}")

    def warning(self, text: str) -> None:
        self._line(f"rake: {paint('warning:', YELLOW, self.color)} {text}")

    def error(self, text: str) -> None:
        self._line(f"rake: {paint('error:', RED, self.color)} {text}")

    def summary(self, sent: int, received: int) -> None:
        """The closing line on stderr; -q leaves it out."""
        if self.status:
            self.status.clear()
            self.status = None   # the run is over: nothing more is drawn
        if self.quiet:
            return
        text = self.progress.summary(time.monotonic(), sent, received)
        code = GREEN if not self.progress.failed and self.progress.done == self.progress.total else RED
        self._line(f"rake: {paint(text, code, self.color)}")

    def open_joblog(self, path: str) -> bool:
        try:
            self.joblog = JobLog(path)
        except OSError as e:
            self.error(f"cannot write the job log {path}: {e.strerror}")
            return False
        return True

    def close(self) -> None:
        """Everything written (waiting for a slow reader), the job log closed."""
        if self.status:
            self.status.clear()
        self.output.drain()
        if self.joblog:
            self.joblog.close()

    def _ended(self, action: Action, where: str, ok: bool, received: int, exits: tuple[int, int]) -> None:
        now = time.monotonic()
        end = self.progress.end(action, where, ok, now, time.time())
        if self.joblog and not self.joblog.failed:
            host = ":" if where == "local" else where
            self.joblog.record(end.seq, host, end.epoch, end.runtime, end.sent, received, *exits, action.command)
            if self.joblog.failed:
                self.error(self.joblog.failed)

    def _block(self, stdout: bytes, stderr: bytes) -> None:
        if self.status and (stdout or stderr):
            self.status.clear()
        if stdout:
            self._emit("out", stdout)
        if stderr:
            self._emit("err", stderr)
        self._redraw()

    def _line(self, text: str, redraw: bool = True) -> None:
        if self.status:
            self.status.clear()
        self.output.write("err", text.encode("utf-8", "replace") + b"\n", ours=True)
        if redraw:
            self._redraw()

    def _emit(self, name: str, data: bytes) -> None:
        self.output.write(name, data)

    def _redraw(self) -> None:
        if self.status:
            self.status.show(self.progress.status())


def _stream(text_stream, closed: BinaryIO | None = None) -> BinaryIO:
    """The binary side of stdout or stderr, or `closed` if the program was started without
    it. Without stdout (`>&-`) what is written there fails, as make's output does ("Bad file
    descriptor", exit 1); a run that writes nothing there is not failed for it. Without
    stderr, rake's messages have nowhere to go: /dev/null."""
    if text_stream is None:
        return closed or ClosedStream()
    return text_stream.buffer


class ClosedStream(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
