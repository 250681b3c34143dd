"""Where a Rakefile's "\\#" must stay "\\#" for /bin/sh to see a literal "#".

The Rakefile strips comments itself and turns "\\#" into "#" (SPEC 2.2). Mid-word, or inside
quotes, the shell then takes that "#" literally. At the start of an unquoted word it would not:
sh reads "#..." as a comment, so `echo \\#define X > config.h` silently ran `echo` alone (and
wrote no config.h). There the backslash is kept, and the shell unescapes it to a literal "#".
"""

from __future__ import annotations

import re

_WORD_BREAKS = " \t;&|()<>`"   # after one of these (or at the start), "#" would begin a shell comment
_PREFIX = re.compile(r"[ \t]*remote-[ \t]*")   # the command of "remote-\\#x" starts after it
# Where sh reads words (and comments): the top level, and inside $( ), ( ) and ` ` even when
# those are within double quotes ("$(grep #define v.h)" has a comment, and no closing ")").
_UNQUOTED = ("", "(", "`")


def keep_escape_at_word_starts(text: str, escaped: list[int]) -> str:
    """text with a backslash put back before each escaped "#" (indices in text) that begins an
    unquoted shell word; every other character unchanged."""
    if not escaped:
        return text
    wanted, out, nest, i = set(escaped), [], [""], 0   # nest: the quotes and substitutions open
    while i < len(text):
        c, inside = text[i], nest[-1]
        if i in wanted and inside in _UNQUOTED and (i == 0 or text[i - 1] in _WORD_BREAKS
                                                    or _PREFIX.fullmatch(text, 0, i)):
            out.append("\\")
        out.append(c)
        if inside == "'":
            if c == "'":
                nest.pop()
        elif c == "\\" and i + 1 < len(text) and i + 1 not in wanted:   # sh: escapes the next one
            out.append(text[i + 1])
            i += 1
        elif (c == inside and c in "\"`") or (c == ")" and inside == "("):
            nest.pop()
        elif c == "$" and text.startswith("(", i + 1):
            nest.append("(")
            out.append("(")
            i += 1
        elif c == "`" or (c in "(\"'" and inside != '"'):
            nest.append(c)
        i += 1
    return "".join(out)
