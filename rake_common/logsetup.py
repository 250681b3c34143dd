"""Log lines of rake-broker and rake-worker: a callable `log(msg)` with levels and two formats.

`log(msg)` logs at info, so the cores keep their one-argument log calls; `log.warning(msg)`
and friends pick another level. Text is `rake-worker: msg` (`rake-worker: warning: msg` for
other levels) as before; json is one object per line: ts, level, component, msg.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}"


class Log:
    def __init__(self, component: str, level: str = "info", fmt: str = "text",
                 stream: TextIO | None = None):
        if level not in LEVELS or fmt not in ("text", "json"):
            raise ValueError(f"unknown log level {level!r} or format {fmt!r}")
        self.component, self.fmt = component, fmt
        self.threshold = LEVELS[level]
        self.stream = stream
        self.lock = threading.Lock()   # the loop and pool threads may log at once

    def __call__(self, msg: str) -> None:
        self.emit("info", msg)

    def debug(self, msg: str) -> None:
        self.emit("debug", msg)

    def info(self, msg: str) -> None:
        self.emit("info", msg)

    def warning(self, msg: str) -> None:
        self.emit("warning", msg)

    def error(self, msg: str) -> None:
        self.emit("error", msg)

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def emit(self, level: str, msg: str) -> None:
        if LEVELS[level] < self.threshold:
            return
        line = self.format(level, msg, time.time())
        stream = self.stream or sys.stderr
        if stream is None:   # started with stderr closed (`2>&-`)
            return
        with self.lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass   # a log nobody reads must not stop the daemon

    def format(self, level: str, msg: str, now: float) -> str:
        if self.fmt == "json":
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
            return json.dumps({"ts": ts, "level": level, "component": self.component, "msg": msg},
                              ensure_ascii=False)
        tag = "" if level == "info" else f"{level}: "
        # Names in messages come from peers: a newline would forge a log line, an escape
        # sequence would drive the reader's terminal.
        return f"{self.component}: {tag}{_CONTROL.sub(_escape, msg)}"


class _Null(Log):
    def emit(self, level: str, msg: str) -> None:
        pass


NULL_LOG: Log = _Null("rake")


def warn(log, msg: str) -> None:
    """Log at warning through a Log, or through any plain one-argument callable."""
    getattr(log, "warning", log)(msg)


def fail(log, msg: str) -> None:
    """Log at error through a Log, or through any plain one-argument callable."""
    getattr(log, "error", log)(msg)
