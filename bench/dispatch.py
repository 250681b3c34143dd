"""No-op dispatch: N `remote-true` actions in one actionset on the embedded local cluster,
against `make -jP` running N `true` recipes and `xargs -PP` running N `true`; and, for
context when it is installed (`pip install 'dask[distributed]'`), Dask's LocalCluster with
P single-threaded worker processes running N `subprocess.run(["true"])` tasks, and Celery
with a Redis broker and a P-process worker (`pip install '.[compare]'` and redis-server).

    python -m bench.dispatch [--actions 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.celery_peer import celery_time
from bench.common import finish, run_measured, tool


def run_true(_: int) -> int:
    return subprocess.run(["true"]).returncode


def dask_time(actions: int, jobs: int) -> float | None:
    """Seconds for Dask to run the same no-op commands, cluster start-up included (as rake's
    embedded cluster start-up is); None when Dask is not installed."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    start = time.perf_counter()
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(run_true, range(actions), pure=False))
    return time.perf_counter() - start


def run(actions: int, rounds: int, jobs: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        work = Path(tmp)
        (work / "Rakefile").write_text("actionset1:\n" + "\tremote-true\n" * actions)
        targets = " ".join(f"t{i}" for i in range(actions))
        (work / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{targets}:\n\t@true\n")
        lines = b"true\n" * actions
        for r in range(rounds):
            make, make_cpu = run_measured(["make", f"-j{jobs}", "-s", "all"], work)
            xargs, _ = run_measured(["xargs", f"-P{jobs}", "-n1", "sh", "-c"], work, lines)
            rake, rake_cpu = run_measured(tool("rake-submit") + ["-q"], work)
            rows.append({"round": r + 1, "actions": actions, "make s": make, "xargs s": xargs, "rake s": rake,
                         "rake actions/s": actions / rake, "make / rake": make / rake, "xargs / rake": xargs / rake,
                         "make CPU s": make_cpu, "rake CPU s": rake_cpu, "make CPU / rake CPU": make_cpu / rake_cpu})
            dask = dask_time(actions, jobs)
            if dask is not None:
                rows[-1].update({"dask s": dask, "dask / rake": dask / rake})
            celery = celery_time(actions, jobs)
            if celery is not None:
                rows[-1].update({"celery s": celery, "celery / rake": celery / rake})
            print(rows[-1], file=sys.stderr)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    rows = run(args.actions, args.rounds, args.jobs)
    return finish("dispatch", rows, {"actions": args.actions},
                  f"make / rake is the fraction of make -j{args.jobs}'s speed that rake reaches "
                  "(target 0.65). rake includes its own start-up and the embedded cluster's. CPU s is the "
                  "user + system time of the whole process tree (every shell included); with both "
                  "programs CPU-bound on the same cores, make CPU / rake CPU bounds make / rake.")


if __name__ == "__main__":
    sys.exit(main())
