"""Run every benchmark: `python -m bench` (or `--quick`: quick mode, about a minute on 2
cores, results in bench/results/quick/) or `python -m bench --full` (each benchmark's
defaults, several minutes, results in bench/results/)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from bench.common import SKIPPED

QUICK = [
    # Full-size runs where size is the point (start-up would weigh more in fewer actions; smaller
    # C units would measure overhead, not a build; fewer actions than 12 hide the slow worker),
    # with fewer rounds; Dask and Celery, which start a cluster each time, in one round only.
    ["bench.dispatch", "--actions", "2000", "--rounds", "2", "--peer-rounds", "1"],
    ["bench.latency", "--samples", "100", "--rounds", "3"],
    ["bench.cbuild", "--rounds", "2"],
    ["bench.transfer", "--mib", "64", "--rounds", "2"],
    ["bench.overhead", "--actions", "150", "--rounds", "1", "--workers", "1", "100", "--idle", "1.5"],
    ["bench.scheduling", "--rounds", "1"],
]
FULL = [[args[0]] for args in QUICK]
STOP_WAIT = 60   # seconds a benchmark gets to stop its cluster and remove its files after Ctrl-C


def run_one(bench: list[str]) -> int:
    """Run one benchmark in its own process group. On Ctrl-C (which the terminal sends to this
    process alone, then), pass one SIGINT to the benchmark's group, as a terminal would, and
    wait for it to clean up: only if it is still there after STOP_WAIT is it killed."""
    proc = subprocess.Popen([sys.executable, "-m", *bench], stdin=subprocess.DEVNULL, process_group=0)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # once is enough: the clean-up must not be cut short
        print(f"\nbench: interrupted; waiting up to {STOP_WAIT} s for {bench[0]} to clean up", file=sys.stderr)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # A SIGTERM (as `timeout` sends) stops the benchmark as Ctrl-C does: its own process group
    # would not otherwise hear of it.
    signal.signal(signal.SIGTERM, _interrupt)
    p = argparse.ArgumentParser(prog="python -m bench", description=" ".join(__doc__.split()))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (the default)")
    mode.add_argument("--full", action="store_true", help="each benchmark with its default (larger) size")
    p.add_argument("--only", nargs="+", default=None, help="benchmark names, e.g. dispatch latency")
    args = p.parse_args()
    names = [bench[0].split(".")[1] for bench in QUICK]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:   # a typo must not look like a passing run
        p.error(f"no benchmark named {', '.join(unknown)} (there are: {' '.join(names)})")
    failed, skipped = [], []
    start = time.monotonic()
    try:
        for bench in FULL if args.full else [b + ["--quick"] for b in QUICK]:
            if args.only and bench[0].split(".")[1] not in args.only:
                continue
            print(f"== {' '.join(bench)}", flush=True)
            began = time.monotonic()
            status = run_one(bench)
            print(f"bench: {bench[0]} took {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
            if status == SKIPPED:
                skipped.append(bench[0])
            elif status:
                failed.append(bench[0])
    except KeyboardInterrupt:
        return 130
    print(f"bench: {time.monotonic() - start:.0f} s", file=sys.stderr)
    if skipped:
        print(f"skipped (a program they need is missing): {', '.join(skipped)}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
