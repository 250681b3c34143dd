"""The floor under the no-op dispatch target: `make -jP` running N `true` recipes, against
plain Python loops that start the same N `sh -c true` P at a time with less and less of what
a sandboxing worker does (bench/floor_loop.py: bare; a pooled job directory with captured
output, in a PID namespace as rake's actions run when we may make one; a directory made and
removed per action), and rake-submit on its embedded cluster. It shows how much of make's
speed is left for rake's own messages and bookkeeping (docs/performance.md).

    python -m bench.floor [--actions 2000] [--rounds 3] [--jobs P]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import finish, jobs_flag, parse, require, run_measured
from bench.dispatch import rake_time
from rake_common.config import usable_cpus

LOOP = Path(__file__).resolve().parent / "floor_loop.py"


def in_namespace() -> list[str]:
    """`unshare` as the worker's spawner runs (root only), or nothing where it cannot."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"]
    return []


def loop_time(mode: str, actions: int, jobs: int, scratch: Path, wrap: list[str] = ()) -> float:
    where = Path(tempfile.mkdtemp(dir=scratch))
    try:
        return run_measured([*wrap, sys.executable, "-I", "-S", str(LOOP), mode, str(actions), str(jobs),
                             str(where)], scratch)[0]
    finally:
        shutil.rmtree(where)


def one_round(work: Path, actions: int, jobs: int, r: int) -> dict:
    make = run_measured(["make", f"-j{jobs}", "-s", "all"], work)[0]
    row = {"round": r + 1, "make s": make}
    for name, mode, wrap in (("bare loop", "bare", []), ("pooled job dirs", "pooled", in_namespace()),
                             ("job dir per action", "made", [])):
        row[f"{name} s"] = secs = loop_time(mode, actions, jobs, work)
        row[f"make / {name}"] = make / secs
    rake, _ = rake_time(work, actions, jobs)
    row.update({"rake s": rake, "make / rake": make / rake})
    return row


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=usable_cpus(),
                   help="parallelism of every tool (default: the CPUs this process may run on)")
    args = parse(p, ("actions", "rounds", "jobs"))
    require("make")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        work = Path(tmp)
        (work / "Rakefile").write_text("actionset1:\n" + "\tremote-true\n" * args.actions)
        targets = " ".join(f"t{i}" for i in range(args.actions))
        (work / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{targets}:\n\t@true\n")
        for r in range(args.rounds):
            rows.append(one_round(work, args.actions, args.jobs, r))
            print(rows[-1], file=sys.stderr)
    return finish("floor", rows, {}, (
        f"Every program runs {args.jobs} at once (make -j{args.jobs}, the loops, "
        f"`{' '.join(['rake-submit', *jobs_flag(args.jobs)])}`). The loops are one Python process each "
        "with no messages: bare, posix_spawn and wait; pooled job dirs, each action in a reused "
        "directory with its stdout and stderr captured to reused files, fstat of both and a scandir "
        f"after it{' (in a PID namespace, as the worker runs actions)' if in_namespace() else ''}; "
        "job dir per action, the same with the directory and files made and removed each time. "
        "make / X is the fraction of make's speed that X reaches (the dispatch target for rake: 0.65)."),
        args.run)


if __name__ == "__main__":
    sys.exit(main())
