"""The terminal: whether to draw a status line and use colour, and drawing it in place.

Colour, first rule that applies wins:
1. `--color=always|never` (`--color=auto` goes on to the next rules);
2. `NO_COLOR` set and not empty: no colour (no-color.org), even if FORCE_COLOR is set too;
3. `FORCE_COLOR` set and not empty: colour, whatever the value (force-color.org);
4. the `color` key of the configuration files, if `always` or `never`;
5. auto: colour only if stderr is a terminal and `TERM` is set and not `dumb`.
The status line needs a smart terminal (as ninja: stderr a tty, TERM set and not `dumb`),
whatever the colour choice, and is off with -q.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from typing import BinaryIO

RED, GREEN, YELLOW, BOLD = "31", "32", "33", "1"
CLEAR_LINE = b"\r\x1b[K"   # back to column 0, erase to the end of the line


def smart_terminal(stream: BinaryIO, env: dict[str, str]) -> bool:
    term = env.get("TERM", "")
    try:
        return os.isatty(stream.fileno()) and term not in ("", "dumb")
    except (OSError, ValueError, AttributeError):
        return False


def into_a_pipe(stream) -> bool:
    """Whether `stream` is a pipe or socket: `rake-submit | tee log` shows our stdout on the
    same terminal, where a status line on stderr would be cut into by it (ninja draws its
    status only when stdout is a terminal; `> log` keeps it, as a file shows nothing)."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def color_setting(flag: str | None, configured: tuple[str, str] | None,
                  env: dict[str, str]) -> tuple[str, str]:
    """(auto|always|never, where that came from), by the rules in this module's docstring."""
    if flag in ("always", "never"):
        return flag, "--color"
    if env.get("NO_COLOR"):
        return "never", "NO_COLOR"
    if env.get("FORCE_COLOR"):
        return "always", "FORCE_COLOR"
    if configured is not None and configured[0] != "auto":
        return configured
    return "auto", "--color" if flag else (configured[1] if configured else "default")


def use_color(choice: str, smart: bool) -> bool:
    return choice == "always" or (choice == "auto" and smart)


def paint(text: str, code: str, on: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if on else text


def elide(text: str, width: int) -> str:
    """Fit `text` in `width` columns, cutting the middle as ninja does. Columns, not
    characters: a CJK character or an emoji takes two, a combining mark none (a line that
    wrapped could not be erased in place)."""
    if columns(text) <= width:
        return text
    if width < 5:
        return _take(text, width)
    keep = width - 3
    tail = _take(text[::-1], keep - keep // 2)[::-1]
    return _take(text, keep // 2) + "..." + tail


def columns(text: str) -> int:
    return sum(_width(c) for c in text) if not text.isascii() else len(text)


def _width(c: str) -> int:
    if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _take(text: str, width: int) -> str:
    """The longest start of `text` that fits in `width` columns."""
    used = 0
    for i, c in enumerate(text):
        used += _width(c)
        if used > width:
            return text[:i]
    return text


class StatusLine:
    """One line at the bottom of the terminal, rewritten in place; cleared before other output."""

    def __init__(self, stream: BinaryIO, write=None):
        """`write`: how to write to `stream` (rake-submit's Output, in order with the rest)."""
        self.stream = stream
        self.write = write
        self.shown = False

    def width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return max(10, columns or 80)   # 0: a terminal that does not know its size

    def show(self, text: str) -> None:
        # One column spare: writing the last column would wrap on some terminals.
        line = elide(" ".join(text.split()), self.width() - 1)
        self._write(b"\r" + line.encode("utf-8", "replace") + b"\x1b[K")
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self._write(CLEAR_LINE)
            self.shown = False

    def _write(self, data: bytes) -> None:
        if self.write is not None:
            return self.write(data)
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass   # the terminal went away; the build goes on
