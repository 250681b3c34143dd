"""Scheduling benchmark: makespan of concurrent submitters on workers of unequal speed, with
rake's least-cost placement against load-blind round-robin and random placement.

    python -m bench.scheduling [--rounds 3] [--submitters 2] [--actions 12]

One broker and three one-slot workers (fast1, fast2, slow) on 127.0.0.1. Every action is
`case $RAKE_WORKER in slow) sleep 0.6;; *) sleep 0.2;; esac`, so the slow worker takes three
times as long. Each round runs every policy once (in a rotating order): all submitters start
together and the makespan is the wall time until the last one exits. The lower bound is the
total work spread over the workers' speeds, as if it were perfectly divisible.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import bench_env, median, parse, tool, write_results

WORKERS = {"fast1": 0.2, "fast2": 0.2, "slow": 0.6}   # name -> seconds per action
POLICIES = ("cost", "round-robin", "random")
ACTION = "remote-case $RAKE_WORKER in slow) sleep 0.6;; *) sleep 0.2;; esac"
HEARTBEAT = "0.2"
TARGET = 20.0   # the target: least-cost at least 20% better than round-robin
DONE = re.compile(rb"^rake: done on (\S+): ", re.M)


def lower_bound(actions: int) -> float:
    """Seconds if the work were divisible: total actions / sum of per-worker rates."""
    return actions / sum(1 / t for t in WORKERS.values())


def drain(stream) -> None:
    """Read a child's pipe to the end in the background, so it can never block on a full pipe."""
    threading.Thread(target=lambda: stream.read(), daemon=True).start()


class Cluster:
    """A broker and three workers as subprocesses; stop() ends each by its pid."""

    def __init__(self, env: dict):
        self.procs: list[subprocess.Popen] = []
        self.env = env
        self.endpoint = ""

    def start(self, tmp: Path) -> None:
        broker = self._start(tool("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "-q"], stdout=subprocess.PIPE)
        self.endpoint = broker.stdout.readline().decode().strip()
        drain(broker.stdout)
        if not self.endpoint.startswith("tcp://"):
            raise RuntimeError(f"rake-broker printed {self.endpoint!r} instead of its endpoint")
        for name in WORKERS:
            self._start(tool("rake-worker") + ["--broker", self.endpoint, "--slots", "1", "--name", name, "-q",
                                               "--workdir", str(tmp / f"worker-{name}")])

    def _start(self, cmd: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Workers first (SIGTERM drains an idle worker at once), then the broker; kill stragglers."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def submit(cluster: Cluster, work: Path, placement: str, count: int) -> list[subprocess.Popen]:
    """Start `count` rake-submit processes at once, each in its own directory of `work`."""
    procs = []
    try:
        for i in range(count):
            cmd = tool("rake-submit") + ["--broker", cluster.endpoint, "-v", "--placement", placement]
            procs.append(subprocess.Popen(cmd, cwd=work / f"s{i}", env=cluster.env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    except BaseException:
        stop_all(procs)
        raise
    return procs


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def collect(procs: list[subprocess.Popen], start: float, what: str) -> tuple[float, Counter]:
    """Wait for every submitter; (seconds until the last one ended, actions done per worker)."""
    where: Counter = Counter()
    ends = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            ends.append(time.perf_counter())
            if proc.returncode:
                raise RuntimeError(f"{what}: rake-submit exited {proc.returncode}:\n"
                                   f"{out.decode(errors='replace')[-2000:]}")
            where.update(m.decode() for m in DONE.findall(out))
    finally:
        stop_all(procs)
    return max(ends) - start, where


def wait_for_workers(cluster: Cluster, tmp: Path, timeout: float = 20.0) -> None:
    """Run a tiny Rakefile until every worker has run part of it: all three have joined."""
    probe = tmp / "probe" / "s0"
    probe.mkdir(parents=True)
    (probe / "Rakefile").write_text("actionset1:\n" + "\tremote-true\n" * (2 * len(WORKERS)))
    deadline = time.monotonic() + timeout
    seen: Counter = Counter()
    while time.monotonic() < deadline:
        procs = submit(cluster, tmp / "probe", "round-robin", 1)
        _, seen = collect(procs, time.perf_counter(), "probe")
        if set(seen) >= set(WORKERS):
            return
        time.sleep(0.3)
    raise RuntimeError(f"only {sorted(seen)} of {sorted(WORKERS)} joined within {timeout:g}s")


def run(rounds: int, submitters: int, actions: int) -> list[dict]:
    rows = []
    env = bench_env(RAKE_HEARTBEAT=HEARTBEAT)
    bound = lower_bound(submitters * actions)
    with tempfile.TemporaryDirectory(prefix="rake-bench-sched-") as tmp:
        tmp = Path(tmp)
        work = tmp / "work"
        for i in range(submitters):
            (work / f"s{i}").mkdir(parents=True)
            (work / f"s{i}" / "Rakefile").write_text("actionset1:\n" + f"\t{ACTION}\n" * actions)
        cluster = Cluster(env)
        try:
            cluster.start(tmp)
            wait_for_workers(cluster, tmp)
            for r in range(rounds):
                order = POLICIES[r % len(POLICIES):] + POLICIES[:r % len(POLICIES)]
                span, spread = {}, {}
                for policy in order:
                    start = time.perf_counter()
                    procs = submit(cluster, work, policy, submitters)
                    span[policy], where = collect(procs, start, policy)
                    if sum(where.values()) != submitters * actions:
                        raise RuntimeError(f"{policy}: {sum(where.values())} actions reported, "
                                           f"expected {submitters * actions}")
                    spread[policy] = "/".join(str(where.get(w, 0)) for w in WORKERS)
                    time.sleep(2 * float(HEARTBEAT))   # let the table settle back to idle
                row = {"round": r + 1}
                for policy in POLICIES:
                    row[f"{policy} s"] = span[policy]
                for policy in POLICIES:
                    row[f"{policy} / bound"] = span[policy] / bound
                row["cost vs round-robin %"] = 100 * (span["round-robin"] - span["cost"]) / span["round-robin"]
                for policy in POLICIES:
                    row[f"{policy} spread"] = spread[policy]
                rows.append(row)
                print(row, file=sys.stderr)
        finally:
            cluster.stop()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduling", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--submitters", type=int, default=2)
    p.add_argument("--actions", type=int, default=12, help="actions per submitter, all in one actionset")
    args = parse(p, ("rounds", "submitters", "actions"))
    rows = run(args.rounds, args.submitters, args.actions)
    numeric = [k for k in rows[0] if k != "round" and not k.endswith("spread")]
    med = {k: median([r[k] for r in rows]) for k in numeric}
    rows.append({"round": "median", **med})
    bound = lower_bound(args.submitters * args.actions)
    gain = med["cost vs round-robin %"]
    verdict = "meets" if gain >= TARGET else "misses"
    path = write_results(
        "scheduling", rows, list(rows[0]),
        f"{args.submitters} concurrent `rake-submit` processes of {args.actions} actions each (one actionset) on "
        f"one broker and three one-slot workers, {', '.join(f'{n} {t:g} s/action' for n, t in WORKERS.items())}; "
        f"RAKE_HEARTBEAT={HEARTBEAT}. Makespan: wall time from starting the submitters until the last exits "
        f"(includes their start-up). Lower bound {bound:.3g} s = {args.submitters * args.actions} actions / "
        f"{sum(1 / t for t in WORKERS.values()):.3g} actions/s. cost = least-cost placement (the default); "
        f"round-robin and random = `--placement`, load-blind. Spread = actions done on "
        f"{'/'.join(WORKERS)}. Median improvement of least-cost over round-robin {gain:.3g}%: {verdict} the "
        f"target of at least {TARGET:g}%.", args.run)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
