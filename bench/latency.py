"""Latency: one remote `true` round trip (JOB to RESULT through a broker to a worker), against
`subprocess.run(["true"])` on the same machine: with the broker and the worker as separate
processes over loopback TCP, and on the embedded local cluster inside the client's process
(driven by the client's loop, as rake-submit drives it).

    python -m bench.latency [--samples 200] [--rounds 3] [--isolate none]

`--isolate none` gives the remote worker no PID namespace, as where it runs without root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import zmq

from bench.common import bench_env, finish, median, parse, start_broker, stop, tool
from protocol import Ack, Hello, Job, Result, Workers, decode, encode
from rake_common.zmqio import send_frames

WAIT = 10.0   # seconds without a RESULT after which the worker is taken for dead


def start_cluster(tmp: str, env: dict, isolate: str, procs: list[subprocess.Popen]) -> str:
    """A broker and a one-slot worker, added to `procs` as each starts; the broker's endpoint."""
    _, endpoint = start_broker(env, procs)
    procs.append(subprocess.Popen(tool("rake-worker") + ["--broker", endpoint, "--name", "w1", "--slots", "1",
                                                         "--workdir", tmp, "--isolate", isolate, "-q"], env=env))
    return endpoint


def connect(endpoint: str) -> tuple[zmq.Socket, str]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sock.send_multipart(encode(Hello(version="bench")))
        if sock.poll(1000):
            msg, _ = decode(sock.recv_multipart())
            if isinstance(msg, Workers) and msg.workers:
                return sock, msg.workers[0].id
        time.sleep(0.2)
    raise RuntimeError("no worker joined")


def check(result: Result) -> None:
    """A round trip counts only if `true` really ran and exited 0."""
    if (result.status, result.code) != ("exited", 0):
        raise RuntimeError(f"job {result.job} ended {result.status} {result.code}: {result.error}")


def next_job(worker: str, job: int, unacked: int | None) -> Job:
    """As rake-submit does, the next job to the worker carries the last result's ACK."""
    return Job(job=job, worker=worker, command="true", acks=() if unacked is None else (unacked,))


def remote_round_trips(sock: zmq.Socket, worker: str, samples: int, first_id: int) -> list[float]:
    """Messages go out through rake-submit's send_frames; the last result is acknowledged alone."""
    times, unacked = [], None
    for i in range(samples):
        start = time.perf_counter()
        send_frames(sock, encode(next_job(worker, first_id + i, unacked)))
        while True:
            if not sock.poll(WAIT * 1000):
                raise RuntimeError(f"no RESULT for job {first_id + i} within {WAIT:g} s: is the worker gone?")
            msg, _ = decode(sock.recv_multipart())
            if isinstance(msg, Result) and msg.job == first_id + i:
                break
        times.append(time.perf_counter() - start)
        check(msg)
        unacked = msg.job
    if unacked is not None:
        send_frames(sock, encode(Ack(worker=worker, jobs=(unacked,))))
    return times


class Embedded:
    """An EmbeddedCluster in this process, with a client link whose HELLO it has answered,
    pumped from this loop between messages as rake-submit's loop pumps it."""

    def __init__(self):
        from protocol.timing import Timing
        from submitter.embedded import EmbeddedCluster
        self.polled, self.poller, self.link = (), zmq.Poller(), None
        self.cluster = EmbeddedCluster(zmq.Context.instance(), Timing(), slots=1)
        try:
            self.link, answer = self.cluster.connect(b"Sbench", "bench", 15)
            self.worker = self._first_worker(answer, time.monotonic() + 15)
        except BaseException:
            self.close()
            raise

    def _wait(self, timeout: float) -> dict:
        """Poll the cluster's descriptors, whose set changes (without a spawner each job has
        its own): the poller is made again when it does."""
        items = self.cluster.poll_items()
        if items != self.polled:
            self.polled, self.poller = items, zmq.Poller()
            for item in items:
                self.poller.register(item, zmq.POLLIN)
        wait = max(0.0, min(timeout, self.cluster.next_deadline() - time.monotonic()))
        return dict(self.poller.poll(wait * 1000))

    def _received(self) -> list:
        """As rake-submit receives from the embedded broker: Parcels, not frames."""
        messages = []
        while self.link.waiting():
            messages.append(self.link.receive().msg)
        return messages

    def _first_worker(self, answer, deadline: float) -> str:
        """The worker's id, once the broker has told us of it (it joins just after start)."""
        while answer is None or not answer.workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded worker did not join")
            self.cluster.handle(self._wait(0.1))
            for msg in self._received():
                answer = msg if isinstance(msg, Workers) and msg.workers else answer
        return answer.workers[0].id

    def round_trips(self, samples: int, first_id: int) -> list[float]:
        """The exchange of remote_round_trips."""
        times, unacked = [], None
        for i in range(samples):
            start = time.perf_counter()
            self.link.send(self.link.pack(next_job(self.worker, first_id + i, unacked)))
            deadline, result = start + WAIT, None
            while result is None:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"no RESULT for job {first_id + i} within {WAIT:g} s (embedded)")
                self.cluster.handle(self._wait(1.0))
                for msg in self._received():
                    if isinstance(msg, Result) and msg.job == first_id + i:
                        result = msg
            times.append(time.perf_counter() - start)
            check(result)
            unacked = result.job
        self.link.send(self.link.pack(Ack(worker=self.worker, jobs=(unacked,))))
        return times

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        self.cluster.close()


def local_runs(samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(["true"])
        times.append(time.perf_counter() - start)
    return times


def run(samples: int, rounds: int, isolate: str = "auto") -> list[dict]:
    rows, procs, embedded = [], [], None
    env = bench_env(RAKE_HEARTBEAT="1")
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        try:
            endpoint = start_cluster(tmp, env, isolate, procs)
            sock, worker = connect(endpoint)
            embedded = Embedded()
            remote_round_trips(sock, worker, 20, 1)   # warm up
            embedded.round_trips(20, 1)
            for r in range(rounds):
                first = 1000 + r * samples
                local = median(local_runs(samples)) * 1000
                remote = median(remote_round_trips(sock, worker, samples, first)) * 1000
                inside = median(embedded.round_trips(samples, first)) * 1000
                rows.append({"round": r + 1, "subprocess.run ms": local, "remote ms": remote,
                             "remote / local": remote / local, "embedded ms": inside,
                             "embedded / local": inside / local})
                print(rows[-1], file=sys.stderr)
            sock.close()
        finally:
            if embedded is not None:
                embedded.close()
            stop(procs)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--isolate", choices=("auto", "none"), default="auto",
                   help="the remote worker's --isolate (none: no PID namespace, as without root)")
    args = parse(p, ("samples", "rounds"))
    rows = run(args.samples, args.rounds, args.isolate)
    return finish("latency" if args.isolate == "auto" else f"latency-isolate-{args.isolate}", rows, {},
                  "Medians of sequential round trips; the worker runs `/bin/sh -c true` in an empty "
                  "sandbox, inside its PID namespace unless --isolate none (target: remote / local at most 2.5). remote: "
                  "rake-broker and rake-worker processes over loopback TCP; embedded: the embedded "
                  "local cluster (what rake-submit starts when no broker is configured) in this "
                  "process, driven by the client's loop. Every RESULT must say `exited 0`.", args.run)


if __name__ == "__main__":
    sys.exit(main())
