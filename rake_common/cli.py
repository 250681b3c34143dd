"""The command-line parser every rake program uses: argparse, but errors in one line."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """A bad option is one line naming it and exit 2, as make and ninja do, not argparse's
    usage banner first (SPEC section 8: errors are one clear line)."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def write_stdout(text: str) -> str | None:
    """Write and flush `text` to stdout; why it could not be (a full disk, no reader, stdout
    closed), or None. A program says that in one line, not with a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError) as e:   # AttributeError: no stdout at all (`>&-`)
        return getattr(e, "strerror", None) or "stdout is closed"
    return None
