"""No-op dispatch: N `remote-true` actions in one actionset on the embedded local cluster,
against `make -jP` running N `true` recipes and `xargs -PP` running N `true`; and, for
context when they are installed (`pip install '.[compare]'`, and redis-server on PATH for
Celery), Dask's LocalCluster with P single-threaded worker processes running N
`subprocess.run(["true"])` tasks, and Celery with a Redis broker and a P-process worker.
P is --jobs, by default the CPUs this process may run on (the embedded cluster's slots).

    python -m bench.dispatch [--actions 2000] [--rounds 3] [--peer-rounds 3] [--jobs P]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import celery_peer
from bench.common import (bench_env, finish, jobs_flag, parse, program_version, require, run_measured, slots,
                          tool)
from rake_common.config import usable_cpus

SUMMARY = re.compile(r"^rake: (\d+) actions? ok, (\d+) failed", re.M)


def run_true(_: int) -> int:
    return subprocess.run(["true"]).returncode


def dask_missing() -> str | None:
    if importlib.util.find_spec("distributed") is None:
        return "Dask skipped: not installed (pip install '.[compare]')"
    return None


def dask_time(actions: int, jobs: int, scratch: Path) -> float:
    """Seconds for Dask to run the same no-op commands, cluster start-up included (as rake's
    embedded cluster start-up is); every task must return status 0."""
    import dask
    from distributed import Client, LocalCluster
    start = time.perf_counter()
    # Both: the workers take local_directory, other parts (its lock files) the config's.
    with dask.config.set({"temporary-directory": str(scratch)}), \
            LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                         local_directory=str(scratch)) as cluster, Client(cluster) as client:
        codes = client.gather(client.map(run_true, range(actions), pure=False))
    elapsed = time.perf_counter() - start
    if len(codes) != actions or any(codes):
        raise RuntimeError(f"Dask: {len(codes)} results, {sum(1 for c in codes if c)} not 0")
    return elapsed


def rake_time(work: Path, actions: int, jobs: int) -> tuple[float, float]:
    """rake-submit's wall and CPU seconds; its summary line must count every action ok."""
    wall, cpu, err = run_measured(tool("rake-submit") + jobs_flag(jobs), work, env=bench_env())
    counted = SUMMARY.search(err)
    if not counted or (int(counted[1]), int(counted[2])) != (actions, 0):
        raise RuntimeError(f"rake-submit did not report {actions} actions ok: {err[-1000:]}")
    return wall, cpu


def one_round(work: Path, actions: int, jobs: int, r: int, peers: list[str]) -> dict:
    """Each tool once, in an order that rotates with the round, so none always runs first."""
    tools = ["make", "xargs", "rake", *peers]
    tools = tools[r % len(tools):] + tools[:r % len(tools)]
    secs, cpu = {}, {}
    for name in tools:
        if name == "make":
            secs[name], cpu[name], _ = run_measured(["make", f"-j{jobs}", "-s", "all"], work)
        elif name == "xargs":
            secs[name], _, _ = run_measured(["xargs", f"-P{jobs}", "-n1", "sh", "-c"], work, b"true\n" * actions)
        elif name == "rake":
            secs[name], cpu[name] = rake_time(work, actions, jobs)
        elif name == "dask":
            secs[name] = dask_time(actions, jobs, work / "dask-scratch")
        else:
            secs[name] = celery_peer.celery_time(actions, jobs, work / "celery")
    rake = secs["rake"]
    row = {"round": r + 1, "actions": actions, "make s": secs["make"], "xargs s": secs["xargs"], "rake s": rake,
           "rake actions/s": actions / rake, "make / rake": secs["make"] / rake, "xargs / rake": secs["xargs"] / rake,
           "make CPU s": cpu["make"], "rake CPU s": cpu["rake"], "make CPU / rake CPU": cpu["make"] / cpu["rake"]}
    for peer in peers:
        row.update({f"{peer} s": secs[peer], f"{peer} / rake": secs[peer] / rake})
    return row


def run(actions: int, rounds: int, peer_rounds: int, jobs: int, versions: dict) -> list[dict]:
    rows, peers = [], []
    for name, missing in (("dask", dask_missing()), ("celery", celery_peer.missing())):
        if missing:
            print(f"dispatch: {missing}", file=sys.stderr)
        elif peer_rounds:
            peers.append(name)
    versions.update(make=program_version(["make", "--version"]))
    if "dask" in peers:
        import dask
        import distributed
        versions.update(dask=dask.__version__, distributed=distributed.__version__)
    if "celery" in peers:
        versions.update(celery_peer.versions())
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        work = Path(tmp)
        (work / "Rakefile").write_text("actionset1:\n" + "\tremote-true\n" * actions)
        targets = " ".join(f"t{i}" for i in range(actions))
        (work / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{targets}:\n\t@true\n")
        for r in range(rounds):
            rows.append(one_round(work, actions, jobs, r, peers if r < peer_rounds else []))
            print(rows[-1], file=sys.stderr)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peer-rounds", type=int, default=3, help="rounds that also run Dask and Celery (the first ones)")
    p.add_argument("--jobs", type=int, default=usable_cpus(),
                   help="parallelism of every tool (default: the CPUs this process may run on)")
    args = parse(p, ("actions", "rounds", "peer_rounds", "jobs"))
    require("make", "xargs")
    rows = run(args.actions, args.rounds, args.peer_rounds, args.jobs, args.run["versions"])
    return finish("dispatch", rows, {"actions": args.actions},
                  f"Every tool runs {args.jobs} at once: make -j{args.jobs}, xargs -P{args.jobs}, "
                  f"`{' '.join(['rake-submit', *jobs_flag(args.jobs)])}` on the embedded local cluster "
                  f"({slots()}), Dask and Celery with {args.jobs} worker processes; the order rotates "
                  "each round. rake's summary line must count every action ok, and every Dask and Celery task "
                  "must return 0. make / rake is the fraction of make's speed that rake reaches (target 0.65); "
                  "rake, Dask and Celery include their own start-up. CPU s is the user + system time of the "
                  "whole process tree (every shell included); with both programs CPU-bound on the same cores, "
                  "make CPU / rake CPU bounds make / rake.", args.run)


if __name__ == "__main__":
    sys.exit(main())
