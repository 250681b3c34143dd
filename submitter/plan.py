"""-n/--dry-run: print what would run where, with the files each remote action ships.

It reads the Rakefile and stats the `requires` files; it runs nothing and opens no socket.
"""

from __future__ import annotations

import os
import shlex

from protocol.paths import printable
from submitter.inputs import input_problem
from submitter.progress import human_size
from submitter.rakefile import Rakefile
from submitter.report import Reporter


def _size(root: str, path: str) -> tuple[str, int]:
    problem = input_problem(root, path)
    if problem:   # missing may be fine (an earlier actionset may make it); the rest is refused
        return ("missing now" if problem == "does not exist" else f"would be refused: it {problem}"), 0
    try:
        size = os.stat(os.path.join(root, path)).st_size
    except OSError:
        return "missing now", 0
    return f"{size} B" if size < 1024 else f"{size} B, {human_size(size)}", size


def _target(candidates) -> str:
    if not candidates:
        return "the embedded local cluster"
    return " or ".join(f"{c.endpoint} (from {c.label})" for c in candidates)


def print_plan(rakefile: Rakefile, root: str, reporter: Reporter, candidates=()) -> None:
    lines = []
    if rakefile.has_remote:
        lines.append(f"dry run: remote actions would go through {_target(candidates)}, not contacted")
    for aset in rakefile.actionsets:
        lines.append(f"actionset{aset.number}: (line {aset.line}, {_count(len(aset.actions), 'action')}, concurrent)")
        for action in aset.actions:
            where = "remote" if action.remote else "local "
            lines.append(f"  [{where}] {action.command}    (line {action.line})")
            total, absent = 0, 0
            for req in action.requires:
                text, size = _size(root, req.path)
                total, absent = total + size, absent + (text == "missing now")
                # Quoted as a requires line would need it: `two words.c` is one file, not two.
                # `#` starts a comment even inside quotes (SPEC 2): a requires line needs `\#`.
                shown = shlex.quote(req.path).replace("#", "\\#")
                lines.append(f"      requires {printable(shown)} ({text})")
            if action.remote and len(action.requires) > 1:
                later = f" ({absent} missing now)" if absent else ""
                lines.append(f"      ships {_count(len(action.requires), 'file')}, {human_size(total)}{later}")
    if not rakefile.actionsets:
        lines.append("no actionsets: nothing to do")
    reporter.output.write("out", ("\n".join(lines) + "\n").encode("utf-8", "replace"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
