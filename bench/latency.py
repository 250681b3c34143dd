"""Latency: one remote `true` round trip (JOB to RESULT through a broker to a worker), against
`subprocess.run(["true"])` on the same machine.

    python -m bench.latency [--samples 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import zmq

from bench.common import finish, median, tool
from protocol import Ack, Hello, Job, Result, Workers, decode, encode
from rake_common.zmqio import send_frames


def start_cluster(tmp: str, env: dict) -> tuple[list[subprocess.Popen], str]:
    broker = subprocess.Popen(tool("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "-q"],
                              stdout=subprocess.PIPE, env=env)
    endpoint = broker.stdout.readline().decode().strip()
    worker = subprocess.Popen(tool("rake-worker") + ["--broker", endpoint, "--name", "w1", "--slots", "1",
                                                       "--workdir", tmp, "-q"], env=env)
    return [broker, worker], endpoint


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


def remote_round_trips(sock: zmq.Socket, worker: str, samples: int, first_id: int) -> list[float]:
    """As rake-submit does, a result is acknowledged after the next job has been sent, and
    messages go out through the same send_frames."""
    times, unacked = [], None
    for i in range(samples):
        start = time.perf_counter()
        send_frames(sock, encode(Job(job=first_id + i, worker=worker, command="true")))
        if unacked is not None:
            send_frames(sock, encode(Ack(worker=worker, jobs=(unacked,))))
        while True:
            msg, _ = decode(sock.recv_multipart())
            if isinstance(msg, Result) and msg.job == first_id + i:
                break
        times.append(time.perf_counter() - start)
        unacked = msg.job
    if unacked is not None:
        send_frames(sock, encode(Ack(worker=worker, jobs=(unacked,))))
    return times


def local_runs(samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(["true"])
        times.append(time.perf_counter() - start)
    return times


def run(samples: int, rounds: int) -> list[dict]:
    rows, procs = [], []
    env = dict(os.environ, RAKE_HEARTBEAT="1")
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        try:
            procs, endpoint = start_cluster(tmp, env)
            sock, worker = connect(endpoint)
            remote_round_trips(sock, worker, 20, 1)   # warm up
            for r in range(rounds):
                local = median(local_runs(samples)) * 1000
                remote = median(remote_round_trips(sock, worker, samples, 1000 + r * samples)) * 1000
                rows.append({"round": r + 1, "subprocess.run ms": local, "remote ms": remote,
                             "remote / local": remote / local})
                print(rows[-1], file=sys.stderr)
            sock.close()
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    rows = run(args.samples, args.rounds)
    return finish("latency", rows, {},
                  "Medians of sequential round trips; the worker runs `/bin/sh -c true` in an empty "
                  "sandbox inside its PID namespace (target: remote / local at most 2.5).")


if __name__ == "__main__":
    sys.exit(main())
