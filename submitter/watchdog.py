"""A process of its own that kills the local actions' process groups if rake-submit dies
without stopping them (kill -9, `timeout -s KILL`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Runs with -S -I: no site, no environment, nothing of ours imported. Reads "+PGID" and
# "-PGID" lines; at end of input (rake-submit has closed its end, or died) it kills what
# is still listed: a shell still running when rake-submit went.
SCRIPT = r"""
import os, signal
groups, rest = set(), b""
while True:
    try:
        data = os.read(0, 65536)
    except InterruptedError:
        continue
    if not data:
        break
    *lines, rest = (rest + data).split(b"\n")
    for line in lines:
        (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class Watchdog:
    """Local actions run in sessions of their own (so that rake-submit alone decides when
    they get a signal), which a kill of rake-submit's process group does not reach, where
    make's recipes would die with make. Started with the first local action; told of each
    one's process group as it starts and ends (under the registry's lock)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.broken = False   # could not be started, or went away: the run goes on without

    def started(self, pgid: int) -> None:
        self._say(f"+{pgid}\n")

    def ended(self, pgid: int) -> None:
        self._say(f"-{pgid}\n")

    def close(self) -> None:
        """The run stopped its actions itself: the watchdog goes without acting, so that it
        never kills a group whose end it missed (and whose number may be another's by now)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _say(self, line: str) -> None:
        if self.broken:
            return
        try:
            if self.proc is None:
                # Its own session: a signal to rake-submit's process group must not reach it.
                self.proc = subprocess.Popen([sys.executable, "-S", "-I", "-c", SCRIPT], stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             start_new_session=True)
            os.write(self.proc.stdin.fileno(), line.encode())
        except OSError:   # no process to be had (the limit): local actions run as before it
            self.broken = True
