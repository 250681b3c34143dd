"""Checks for relative file names that cross the wire or come from a Rakefile, and text
from peers made fit for a message line."""

from __future__ import annotations


def printable(text: object) -> str:
    """Text from a peer or a user, fit for one line of a terminal: control characters (ESC,
    CR, LF, DEL, C1 ...) and other unprintable ones shown as Python escapes (`\x1b`, `\n`)."""
    text = str(text)
    if text.isprintable():   # nearly always: names on every status and -v line
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    # A byte that was not UTF-8 in a file name (surrogateescape) is shown as that byte.
    return f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else repr(c)[1:-1]


def quote_text(text: str) -> str:
    """User text for a one-line message: control characters escaped, long text cut."""
    return '"' + printable(text if len(text) <= 60 else text[:60] + "...") + '"'


def check_relative_path(path: str) -> str | None:
    """Why `path` may not name a file inside a working/sandbox directory, or None if it may."""
    parts = path.split("/")
    if not path:
        return "empty file name"
    if "\0" in path:
        return f"file name {quote_text(path)} contains a NUL character"
    if path.startswith("/"):
        return f"absolute path {quote_text(path)} (must be relative)"
    if ".." in parts:
        return f'path {quote_text(path)} has a ".." component'
    if path.endswith("/") or parts[-1] == "." or all(p in ("", ".") for p in parts):   # "a.txt/." too
        return f"{quote_text(path)} names a directory, not a file"
    return None


def normalise_path(path: str) -> str:
    """One spelling per file, so "./a//b" and "a/b" are shipped (and deduplicated) as one."""
    return "/".join(p for p in path.split("/") if p not in ("", "."))
