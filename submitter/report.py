"""What rake-submit prints: each action's raw output as one block, failures, notes."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from submitter.rakefile import Action


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
    """Writes to the real stdout/stderr as bytes, whole blocks at a time, so nothing interleaves."""

    def __init__(self, verbose: bool = False, quiet: bool = False,
                 out: BinaryIO | None = None, err: BinaryIO | None = None):
        self.verbose, self.quiet = verbose, quiet
        self.out = out or _stream(sys.stdout)
        self.err = err or _stream(sys.stderr)

    def action_ended(self, number: int, action: Action, where: str, status: str, code: int,
                     stdout: bytes, stderr: bytes, timeout: float | None = None, why: str = "",
                     truncated: tuple = ()) -> None:
        """`why`: the worker's reason (a limit it enforced); `truncated`: streams it cut."""
        ok = status == "exited" and code == 0
        if not ok:
            self._line(f"FAILED: {describe_end(status, code, timeout)} {action.command} "
                       f"(actionset {number}, line {action.line}, on {where})" + (f": {why}" if why else ""))
        elif self.verbose:
            self._line(f"rake: done on {where}: {action.command} (line {action.line})")
        self._block(stdout, stderr)
        for stream, data in (("stdout", stdout), ("stderr", stderr)):
            if stream in truncated:
                self._line(f"rake: line {action.line}: [{stream} truncated at {len(data)} bytes by {where}]")

    def action_failed(self, number: int, action: Action, message: str) -> None:
        self._line(f"FAILED: {action.command} (actionset {number}, line {action.line}): {message}")

    def started(self, action: Action, where: str) -> None:
        if self.verbose:
            self._line(f"rake: start on {where}: {action.command} (line {action.line})")

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(f"rake: {text}")

    def warning(self, text: str) -> None:
        self._line(f"rake: warning: {text}")

    def error(self, text: str) -> None:
        self._line(f"rake: error: {text}")

    def _block(self, stdout: bytes, stderr: bytes) -> None:
        if stdout:
            self.out = _write(self.out, stdout)
        if stderr:
            self.err = _write(self.err, stderr)

    def _line(self, text: str) -> None:
        self.out = _write(self.out, b"")
        self.err = _write(self.err, text.encode("utf-8", "replace") + b"\n")


def _stream(text_stream) -> BinaryIO:
    """The binary side of stdout/stderr; /dev/null if the program was started without it."""
    if text_stream is None:
        return open(os.devnull, "wb")
    return text_stream.buffer


def _write(stream: BinaryIO, data: bytes) -> BinaryIO:
    """Write and flush; a reader that went away (`| head`) stops the output, not the build."""
    try:
        stream.write(data)
        stream.flush()
        return stream
    except (BrokenPipeError, ValueError):
        # Like make under `| head`: nothing more is shown. Point the real fd at /dev/null so
        # Python's own flush at exit does not complain either.
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        except (OSError, ValueError):
            pass
        os.close(null)
        return open(os.devnull, "wb")
