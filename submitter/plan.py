"""-n/--dry-run: print what would run where, with the files each remote action ships."""

from __future__ import annotations

import os

from submitter.rakefile import Rakefile
from submitter.report import Reporter


def _size(root: str, path: str) -> str:
    try:
        return f"{os.stat(os.path.join(root, path)).st_size} B"
    except OSError:
        return "missing now"


def print_plan(rakefile: Rakefile, root: str, reporter: Reporter) -> None:
    lines = []
    for aset in rakefile.actionsets:
        lines.append(f"actionset{aset.number}: (line {aset.line}, {len(aset.actions)} actions, concurrent)")
        for action in aset.actions:
            where = "remote" if action.remote else "local "
            lines.append(f"  [{where}] {action.command}    (line {action.line})")
            for req in action.requires:
                lines.append(f"      requires {req.path} ({_size(root, req.path)})")
    if not rakefile.actionsets:
        lines.append("no actionsets: nothing to do")
    reporter.out.write(("\n".join(lines) + "\n").encode("utf-8", "replace"))
    reporter.out.flush()
