"""What rake-submit prints: each action's raw output as one block, failures, notes."""

from __future__ import annotations

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
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer

    def action_ended(self, number: int, action: Action, where: str, status: str, code: int,
                     stdout: bytes, stderr: bytes, timeout: float | None = None) -> None:
        ok = status == "exited" and code == 0
        if not ok:
            self._line(f"FAILED: {describe_end(status, code, timeout)} {action.command} "
                       f"(actionset {number}, line {action.line}, on {where})")
        elif self.verbose:
            self._line(f"rake: done on {where}: {action.command} (line {action.line})")
        self._block(stdout, stderr)

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
            self.out.write(stdout)
            self.out.flush()
        if stderr:
            self.err.write(stderr)
            self.err.flush()

    def _line(self, text: str) -> None:
        self.out.flush()
        self.err.write(text.encode("utf-8", "replace") + b"\n")
        self.err.flush()
