"""The command-line parser every rake program uses: argparse, but errors in one line."""

from __future__ import annotations

import argparse
import errno
import os
import sys

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """A bad option is one line naming it and exit 2, as make and ninja do, not argparse's
    usage banner first (SPEC section 8: errors are one clear line)."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)

    def _print_message(self, message: str, file=None) -> None:
        """--help and --version: argparse drops a write error and exits 0 with nothing written
        (`--version >/dev/full`); say so in one line and exit 1, as coreutils do."""
        if not message:
            return
        if file is None or file is sys.stdout:   # None: stdout closed (`>&-`)
            if print_stdout(self.prog, message):
                sys.exit(1)
            return
        try:
            file.write(message)
        except (AttributeError, OSError):
            pass


def write_stdout(text: str) -> str | None:
    """Write and flush `text` to stdout; why it could not be (a full disk, no reader, stdout
    closed), or None. A program says that in one line, not with a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError) as e:   # AttributeError: no stdout at all (`>&-`)
        return getattr(e, "strerror", None) or "stdout is closed"
    return None


def print_stdout(prog: str, text: str) -> int:
    """Write `text` (--show-config, --help) to stdout: 0 once written, else one line on stderr
    naming why and 1. A reader that has gone (`| head -1`) took what it wanted: 0, quietly,
    as rake-submit's output under `| head`."""
    problem = write_stdout(text)
    if problem is None:
        return 0
    if problem == os.strerror(errno.EPIPE):
        # Python flushes stdout again at exit: its buffer must not meet the closed pipe there.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 0
    if sys.stderr is not None:
        sys.stderr.write(f"{prog}: cannot write to stdout: {problem}\n")
        sys.stderr.flush()
    return 1
