"""Where a Rakefile's "\\#" must stay "\\#" for /bin/sh to see a literal "#".

The Rakefile strips comments itself and turns "\\#" into "#" (SPEC 2.2). Mid-word, or inside
quotes, the shell then takes that "#" literally. At the start of an unquoted word it would not:
sh reads "#..." as a comment, so `echo \\#define X > config.h` silently ran `echo` alone (and
wrote no config.h). There the backslash is kept, and the shell unescapes it to a literal "#".
"""

from __future__ import annotations

import re

_WORD_BREAKS = " \t;&|()<>"   # after one of these (or at the start), "#" would begin a shell comment
_PREFIX = re.compile(r"[ \t]*remote-[ \t]*")   # the command of "remote-\\#x" starts after it


def keep_escape_at_word_starts(text: str, escaped: list[int]) -> str:
    """text with a backslash put back before each escaped "#" (indices in text) that begins an
    unquoted shell word; every other character unchanged."""
    if not escaped:
        return text
    wanted, out, quote, i = set(escaped), [], "", 0
    while i < len(text):
        c = text[i]
        if i in wanted and not quote and (i == 0 or text[i - 1] in _WORD_BREAKS or _PREFIX.fullmatch(text, 0, i)):
            out.append("\\")
        out.append(c)
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\" and i + 1 < len(text) and i + 1 not in wanted:   # sh: escapes the next one
            out.append(text[i + 1])
            i += 1
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        i += 1
    return "".join(out)
