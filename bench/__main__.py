"""Run every benchmark in its quick mode: `python -m bench` (about five minutes on 2 cores)."""

from __future__ import annotations

import subprocess
import sys

QUICK = [
    ["bench.dispatch", "--actions", "1000", "--rounds", "3"],
    ["bench.latency", "--samples", "100", "--rounds", "3"],
    ["bench.cbuild"],
    ["bench.transfer", "--mib", "128", "--rounds", "3"],
    ["bench.overhead", "--actions", "200"],
    ["bench.scheduling"],
]


def main() -> int:
    failed = []
    for args in QUICK:
        print(f"== {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", *args]).returncode:
            failed.append(args[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
