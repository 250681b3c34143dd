"""--joblog FILE: one tab-separated line per finished action, in GNU parallel's columns.

Seq is the action's position in the Rakefile (1 = first action of the first actionset);
Host is the worker's name, `:` for a local action (as GNU parallel writes for local jobs);
Starttime is epoch seconds, JobRuntime seconds, both with 3 decimals; Send is the size of the
action's `requires` files and Receive the size of the output files that came back (as GNU
parallel counts --transfer and --return files; cached or inline, whatever crossed the wire);
Exitval and Signal come from the action's end: an exit status is (N, 0), a signal (-1, N),
and an action that ended without either (timed out, lost, refused) is (-1, 0). Tabs and
line breaks in a command become spaces, so every line has nine fields. Each line is written and
flushed when its action ends.
"""

from __future__ import annotations

import contextlib
import os
from typing import TextIO

HEADER = ("Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command")


def exit_columns(status: str, code: int) -> tuple[int, int]:
    """(Exitval, Signal) for how an action ended."""
    if status == "exited":
        return code, 0
    if status == "signalled":
        return -1, code
    return -1, 0


def joblog_clash(path: str, rakefile_path: str, requires: list[str]) -> str | None:
    """Why `path` must not be the job log: it is the Rakefile or a `requires` file, which
    opening it for writing would empty (as gcc refuses `-o` naming an input)."""
    def same(other: str) -> bool:
        if os.path.normpath(other) == os.path.normpath(path):
            return True
        with contextlib.suppress(OSError):
            return os.path.samefile(other, path)
        return False
    if rakefile_path != "-" and same(rakefile_path):
        return f"--joblog {path} is the Rakefile: refusing to overwrite it"
    for req in requires:
        if same(req):
            return f"--joblog {path} is a required file ({req}): refusing to overwrite it"
    return None


class JobLog:
    def __init__(self, path: str):
        # Line buffered text with "\n" only: GNU parallel's format, whatever the platform.
        self.path, self.failed = path, None   # failed: why it could not be written (a full disk)
        self.fh: TextIO = open(path, "w", encoding="utf-8", errors="replace", newline="\n")
        try:
            self._put(HEADER)
        except OSError:   # not even its header (/dev/full): a usage error, before anything runs
            with contextlib.suppress(OSError):
                self.fh.close()
            raise

    def record(self, seq: int, host: str, start: float, runtime: float, send: int, receive: int,
               exitval: int, signal: int, command: str) -> None:
        self._write((str(seq), host, f"{start:.3f}", f"{max(0.0, runtime):.3f}", str(send),
                     str(receive), str(exitval), str(signal), _one_line(command)))

    def _write(self, fields) -> None:
        """Said once and given up on if it fails (the run goes on and exits 1, as when
        stdout cannot be written): not a traceback."""
        if self.failed is not None:
            return
        try:
            self._put(fields)
        except OSError as e:
            self.failed = f"cannot write the job log {self.path}: {e.strerror}"
            self.close()

    def _put(self, fields) -> None:
        self.fh.write("\t".join(f.replace("\t", " ") for f in fields) + "\n")
        self.fh.flush()

    def close(self) -> None:
        if not self.fh.closed:
            try:
                self.fh.close()
            except OSError as e:   # what was still buffered
                self.failed = self.failed or f"cannot write the job log {self.path}: {e.strerror}"


def _one_line(text: str) -> str:
    return text.translate({9: " ", 10: " ", 13: " "})
