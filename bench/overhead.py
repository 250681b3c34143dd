"""Control overhead: messages the broker handles per remote action with 1, 10 and 100 workers
connected (heartbeats keep this flat, where polling every host grows with the hosts), and the
broker's idle CPU with those workers heartbeating, against a broker with none. Workers and
the client are simulated in this process (instant answers); the broker is the real program.

    python -m bench.overhead [--actions 300] [--workers 1 10 100] [--rounds 3] [--idle 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import zmq

from bench.common import bench_env, median, parse, start_broker, stop, write_results
from protocol import Ack, Heartbeat, Hello, Job, Load, Ready, Result, Workers, decode, encode

HEARTBEAT = 0.2
PER_ACTION = ("JOB", "RESULT", "ACK")


class Peers:
    """A client and N worker DEALERs on one broker. Every peer heartbeats; workers answer each
    JOB at once. Each message is counted by type where it leaves or arrives, so what the
    broker handled is the sum, heartbeats apart (they depend on time, not on actions)."""

    def __init__(self, endpoint: str, n: int):
        ctx = zmq.Context.instance()
        self.client = self._socket(ctx, endpoint)
        self.workers = [self._socket(ctx, endpoint) for _ in range(n)]
        self.counts: Counter = Counter()
        self.beats = 0
        self.table: dict = {}
        self.results: dict[int, Result] = {}
        self.seq = 1
        self.send(self.client, Hello(version="bench", heartbeat=HEARTBEAT))
        for i, s in enumerate(self.workers):
            self.send(s, Ready(name=f"fake{i:03d}", host="bench", version="0",
                               load=Load(queue=0, running=0, slots=1, seq=1)))
        self.poller = zmq.Poller()
        for s in [self.client, *self.workers]:
            self.poller.register(s, zmq.POLLIN)
        self.next_beat = time.monotonic()

    @staticmethod
    def _socket(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        return s

    def send(self, sock: zmq.Socket, msg, blobs=()) -> None:
        sock.send_multipart(encode(msg, list(blobs)))
        self.tally(msg)

    def tally(self, msg) -> None:
        if isinstance(msg, Heartbeat):
            self.beats += 1
        else:
            self.counts[msg.TYPE] += 1

    def pump(self, timeout_ms: int = 0) -> None:
        for s, _ in self.poller.poll(timeout_ms):
            while True:
                try:
                    msg, _ = decode(s.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                self.tally(msg)
                if s is self.client:
                    self.on_client(msg)
                elif isinstance(msg, Job):
                    self.send(s, Result(job=msg.job, client=msg.client, status="exited", stdout=0, stderr=1),
                              [b"", b""])
        if time.monotonic() >= self.next_beat:
            self.seq += 1
            self.send(self.client, Heartbeat())
            for s in self.workers:
                self.send(s, Heartbeat(load=Load(queue=0, running=0, slots=1, seq=self.seq)))
            self.next_beat += HEARTBEAT

    def on_client(self, msg) -> None:
        if isinstance(msg, Workers):
            self.table.update({w.id: w for w in msg.workers})
        elif isinstance(msg, Result):
            self.results[msg.job] = msg

    def close(self) -> None:
        for s in [self.client, *self.workers]:
            s.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` (libzmq's I/O threads do much of the work), in
    nanoseconds from schedstat where the kernel has it, else in clock ticks."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*/schedstat"))
    if tasks:
        return sum(int(t.read_text().split()[0]) for t in tasks) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resolution() -> str:
    if Path(f"/proc/{os.getpid()}/schedstat").exists():
        return "read from /proc/PID/task/*/schedstat, in nanoseconds"
    return f"read from /proc/PID/stat, in ticks of {1000 / os.sysconf('SC_CLK_TCK'):g} ms"


def join_all(peers: Peers, n_workers: int) -> list[str]:
    """The ids of the workers, once the broker has told the client of all of them."""
    deadline = time.monotonic() + 20
    while len(peers.table) < n_workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(peers.table)} of {n_workers} workers joined in 20 s")
        peers.pump(10)
    return sorted(peers.table)


def idle_cpu(broker: subprocess.Popen, peers: Peers, window: float) -> tuple[float, int]:
    """Only heartbeats flowing for `window` seconds: (broker CPU seconds, heartbeats handled)."""
    cpu0, beats0, t0 = cpu_seconds(broker.pid), peers.beats, time.monotonic()
    while time.monotonic() - t0 < window:
        peers.pump(10)
    return cpu_seconds(broker.pid) - cpu0, peers.beats - beats0


def one_action(peers: Peers, job: int, worker: str) -> None:
    """Send a JOB, wait for its RESULT (at most 10 s), ACK it, as rake-submit would."""
    peers.send(peers.client, Job(job=job, worker=worker, command="true"))
    deadline = time.monotonic() + 10
    while job not in peers.results:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no result for job {job} in 10 s")
        peers.pump(1)
    peers.send(peers.client, Ack(worker=peers.results[job].worker, jobs=(job,)))


def busy(peers: Peers, ids: list[str], actions: int) -> tuple[Counter, float]:
    """Actions one after another, spread over all workers: (messages by type, actions/s)."""
    before, start = Counter(peers.counts), time.monotonic()
    for i in range(actions):
        one_action(peers, i + 1, ids[i % len(ids)])
    span = time.monotonic() - start
    settle = time.monotonic() + 0.1   # the last ACK reaches its worker
    while time.monotonic() < settle:
        peers.pump(10)
    return peers.counts - before, actions / span


def measure(n_workers: int, actions: int, window: float) -> dict:
    procs: list[subprocess.Popen] = []
    peers = None
    try:
        broker, endpoint = start_broker(bench_env(RAKE_HEARTBEAT=str(HEARTBEAT)), procs)
        peers = Peers(endpoint, n_workers)
        ids = join_all(peers, n_workers)
        cpu, beats = idle_cpu(broker, peers, window)
        row = {"workers": n_workers, "heartbeats/s": beats / window, "broker CPU %": 100 * cpu / window}
        if n_workers:
            counts, rate = busy(peers, ids, actions)
            row.update({t: counts[t] / actions for t in PER_ACTION})
            row["other"] = sum(v for t, v in counts.items() if t not in PER_ACTION) / actions
            row.update({"messages per action": sum(counts.values()) / actions, "actions/s": rate})
        return row
    finally:
        if peers is not None:
            peers.close()
        stop(procs)


def one_round(r: int, counts: list[int], actions: int, window: float) -> list[dict]:
    """A broker with no workers (the idle baseline), then each count, in an order rotating with the round."""
    base = measure(0, 0, window)
    order = counts[r % len(counts):] + counts[:r % len(counts)]
    rows = {n: measure(n, actions, window) for n in order}
    for n in order:
        row = rows[n]
        extra_cpu = (row["broker CPU %"] - base["broker CPU %"]) / 100 * window
        beats = row["heartbeats/s"] * window - base["heartbeats/s"] * window
        row.update({"round": r + 1, "baseline CPU %": base["broker CPU %"],
                    "µs per heartbeat": 1e6 * extra_cpu / beats})
        print(row, file=sys.stderr)
    return [rows[n] for n in counts]


COLUMNS = ["round", "workers", *PER_ACTION, "other", "messages per action", "actions/s", "heartbeats/s",
           "broker CPU %", "baseline CPU %", "µs per heartbeat"]


def medians(rows: list[dict], counts: list[int]) -> list[dict]:
    """One median row per worker count, over the rounds."""
    out = []
    for n in counts:
        mine = [r for r in rows if r["workers"] == n]
        out.append({"round": "median", "workers": n,
                    **{c: median([r[c] for r in mine]) for c in COLUMNS[2:]}})
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=300)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--idle", type=float, default=3.0, help="seconds of each idle CPU window")
    args = parse(p, ("actions", "workers", "rounds", "idle"))
    rows = []
    for r in range(args.rounds):
        rows += one_round(r, args.workers, args.actions, args.idle)
    if args.rounds > 1:   # one round's medians would only repeat its rows
        rows += medians(rows, args.workers)
    notes = (f"RAKE_HEARTBEAT={HEARTBEAT}. Messages per action: every message other than a heartbeat, "
             "counted by type where it left or reached the simulated client and workers during "
             f"{args.actions} sequential actions (so each JOB, RESULT and ACK counts twice: into the broker "
             "and out of it); other = worker-table pushes and anything else. Heartbeats depend on time, "
             "not on actions, and are measured apart: heartbeats/s (sent and received by the simulated "
             f"peers) and the broker's CPU over {args.idle:g} s with only heartbeats flowing, against a "
             f"broker with no workers (baseline); CPU is {resolution()}. µs per heartbeat = the CPU above "
             "the baseline / the heartbeats above it; with few workers those are few, and that figure is "
             "within the noise (it can come out negative): read the one with the most workers. Baseline "
             "for messages per action: reasoned, not measured: a scheduler that polled every host would "
             "add a round trip per host to each placement, 2 x workers messages.")
    path = write_results("overhead", rows, COLUMNS, notes, args.run)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
