"""Control overhead: messages the broker handles per remote action with 1, 10 and 100 workers
connected (heartbeats keep this flat, where polling every host grows with the hosts), and
broker CPU per heartbeat. Workers are simulated in this process (instant answers), the
broker is the real program.

    python -m bench.overhead [--actions 300] [--workers 1 10 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import zmq

from bench.common import tool, write_results
from protocol import Ack, Heartbeat, Hello, Job, Load, Ready, Result, Workers, decode, encode

HEARTBEAT = 0.2


class FakeWorkers:
    """N worker DEALERs that register, heartbeat, and answer every JOB at once."""

    def __init__(self, endpoint: str, n: int):
        ctx = zmq.Context.instance()
        self.socks = []
        for i in range(n):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            s.send_multipart(encode(Ready(name=f"fake{i:03d}", host="bench", version="0",
                                          load=Load(queue=0, running=0, slots=1, seq=1))))
            self.socks.append(s)
        self.sent = self.received = self.beats = 0
        self.seq = 1
        self.poller = zmq.Poller()
        for s in self.socks:
            self.poller.register(s, zmq.POLLIN)
        self.next_beat = time.monotonic()

    def pump(self, timeout_ms: int = 0) -> None:
        for s, _ in self.poller.poll(timeout_ms):
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.received += 1
                msg, _ = decode(frames)
                if isinstance(msg, Job):
                    self.seq += 1
                    s.send_multipart(encode(Result(job=msg.job, client=msg.client, status="exited",
                                                   stdout=0, stderr=1), [b"", b""]))
                    self.sent += 1
        if time.monotonic() >= self.next_beat:
            self.seq += 1
            for s in self.socks:
                s.send_multipart(encode(Heartbeat(load=Load(queue=0, running=0, slots=1, seq=self.seq))))
            self.sent += len(self.socks)
            self.beats += len(self.socks)
            self.next_beat += HEARTBEAT

    def close(self) -> None:
        for s in self.socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def join_all(client: zmq.Socket, workers: "FakeWorkers", n_workers: int) -> list[str]:
    """The ids of the workers, once the broker has told the client of all of them."""
    table, deadline = {}, time.monotonic() + 20
    while len(table) < n_workers and time.monotonic() < deadline:
        workers.pump(10)
        while client.poll(0):
            msg, _ = decode(client.recv_multipart())
            if isinstance(msg, Workers):
                table.update({w.id: w for w in msg.workers})
    return sorted(table)


def idle_cost(broker: subprocess.Popen, client: zmq.Socket, workers: "FakeWorkers") -> tuple[float, int]:
    """Idle for 2 s, only heartbeats flowing: (broker CPU seconds, heartbeats sent)."""
    cpu0, beats0, t0 = cpu_seconds(broker.pid), workers.beats, time.monotonic()
    while time.monotonic() - t0 < 2.0:
        workers.pump(10)
        while client.poll(0):
            client.recv_multipart()
    return cpu_seconds(broker.pid) - cpu0, workers.beats - beats0


def one_action(client: zmq.Socket, workers: "FakeWorkers", job: int, worker: str) -> int:
    """Send a JOB, wait for its RESULT (at most 10 s), ACK it: the client's messages."""
    client.send_multipart(encode(Job(job=job, worker=worker, command="true")))
    sent, deadline = 1, time.monotonic() + 10
    while time.monotonic() < deadline:
        workers.pump(1)
        if client.poll(0):
            msg, _ = decode(client.recv_multipart())
            sent += 1
            if isinstance(msg, Result) and msg.job == job:
                client.send_multipart(encode(Ack(worker=msg.worker, jobs=(msg.job,))))
                return sent + 1
    raise RuntimeError(f"no result for job {job} in 10 s")


def measure(n_workers: int, actions: int) -> dict:
    env = dict(os.environ, RAKE_HEARTBEAT=str(HEARTBEAT))
    broker = subprocess.Popen(tool("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "-q"],
                              stdout=subprocess.PIPE, env=env)
    try:
        endpoint = broker.stdout.readline().decode().strip()
        workers = FakeWorkers(endpoint, n_workers)
        client = zmq.Context.instance().socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(endpoint)
        client.send_multipart(encode(Hello(version="bench")))
        ids = join_all(client, workers, n_workers)
        idle_cpu, idle_beats = idle_cost(broker, client, workers)
        # Busy: actions one after another, spread over all workers; count every message the
        # broker received or sent, minus the heartbeat traffic of the same span.
        sent0, recv0, beats0 = workers.sent, workers.received, workers.beats
        client_msgs, start = 0, time.monotonic()
        for i in range(actions):
            client_msgs += one_action(client, workers, i + 1, ids[i % len(ids)])
        span = time.monotonic() - start
        worker_msgs = (workers.sent - sent0) + (workers.received - recv0)
        beat_msgs = 2 * (workers.beats - beats0)  # each heartbeat in, and one broker beat out
        per_action = (client_msgs + worker_msgs - beat_msgs) / actions
        workers.close()
        client.close()
        return {"workers": n_workers, "messages per action": per_action,
                "heartbeats/s": idle_beats / 2.0,
                "broker CPU µs per heartbeat": 1e6 * idle_cpu / max(idle_beats, 1),
                "actions/s": actions / span}
    finally:
        broker.terminate()
        broker.wait(timeout=10)

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=300)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 10, 100])
    args = p.parse_args()
    rows = []
    for n in args.workers:
        rows.append(measure(n, args.actions))
        print(rows[-1], file=sys.stderr)
    path = write_results("overhead", rows, list(rows[0]),
                         "Messages per action count JOB, RESULT and ACK at both ends of the broker "
                         "(plus pushes), heartbeat traffic of the same span subtracted. With polling, "
                         "each action would cost a round trip per host.")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
