"""Run every benchmark: `python -m bench` (quick mode, about 90 s on 2 cores) or
`python -m bench --full` (each benchmark's defaults, several minutes)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

QUICK = [
    # Full-size runs where size is the point (start-up would weigh more in fewer actions; smaller
    # C units would measure overhead, not a build; fewer actions than 12 hide the slow worker),
    # with fewer rounds.
    ["bench.dispatch", "--actions", "2000", "--rounds", "2"],
    ["bench.latency", "--samples", "100", "--rounds", "3"],
    ["bench.cbuild", "--rounds", "2"],
    ["bench.transfer", "--mib", "64", "--rounds", "3"],
    ["bench.overhead", "--actions", "150"],
    ["bench.scheduling", "--rounds", "2"],
]
FULL = [[args[0]] for args in QUICK]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="each benchmark with its default (larger) size")
    p.add_argument("--only", nargs="+", default=None, help="benchmark names, e.g. dispatch latency")
    args = p.parse_args()
    names = [bench[0].split(".")[1] for bench in QUICK]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:   # a typo must not look like a passing run
        p.error(f"no benchmark named {', '.join(unknown)} (there are: {' '.join(names)})")
    failed = []
    start = time.monotonic()
    for bench in FULL if args.full else QUICK:
        if args.only and bench[0].split(".")[1] not in args.only:
            continue
        print(f"== {' '.join(bench)}", flush=True)
        if subprocess.run([sys.executable, "-m", *bench]).returncode:
            failed.append(bench[0])
    print(f"bench: {time.monotonic() - start:.0f} s", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
