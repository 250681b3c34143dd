"""The embedded local cluster: a broker and a worker inside rake-submit, driven by its loop."""

from __future__ import annotations

import os
import shutil
import socket
import time

import zmq

from broker.loop import BrokerLoop
from protocol import DecodeError, Hello, Workers, decode, encode
from protocol.timing import Timing
from protocol.version import VERSION
from rake_common.zmqio import send_frames
from submitter.interrupts import held
from worker.loop import WorkerLoop, make_dealer
from worker.workdir import claim, fresh_workdir


class EmbeddedCluster:
    """Started when no broker is configured, so a Rakefile without HOSTS just works.

    It has no thread of its own: the submitter's loop polls the broker's and the worker's
    sockets with its own (poll_items, next_deadline, handle). A job and its result then pass
    between the three without a thread switch or a fight for the GIL, which with two busy
    cores cost more than the work itself."""

    def __init__(self, ctx: zmq.Context, timing: Timing, slots: int | None = None, log=lambda s: None):
        self.ctx = ctx
        self.workdir = fresh_workdir()   # also clears those of submitters killed mid-run
        self.lock = claim(self.workdir)
        endpoint = f"inproc://rake-embedded-{os.getpid()}-{id(self)}"
        self.broker = BrokerLoop(endpoint, timing, log, ctx=ctx)
        self.endpoint = self.broker.endpoint
        self.worker = WorkerLoop(self.endpoint, "embedded", socket.gethostname(),
                                 slots or os.cpu_count() or 1, self.workdir, timing, log, ctx=ctx)
        self.worker.begin()
        self.worker_on = True
        self.heartbeat = timing.heartbeat
        self.last_handled = time.monotonic()

    def connect(self, identity: bytes, name: str, timeout: float) -> tuple[zmq.Socket, Workers | None]:
        """A submitter's socket to this broker, and the broker's answer to its HELLO (None if
        none came within `timeout`: then the session says hello again itself)."""
        sock = make_dealer(self.ctx, self.endpoint, identity)
        send_frames(sock, encode(Hello(version=VERSION, name=name)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            poller = zmq.Poller()
            for item in (sock, *self.poll_items()):
                poller.register(item, zmq.POLLIN)
            wait = min(deadline, self.next_deadline()) - time.monotonic()
            events = dict(poller.poll(max(0.0, wait) * 1000 + 1))
            self.handle(events)
            if sock in events:
                try:
                    msg, _ = decode(sock.recv_multipart(zmq.NOBLOCK))
                except (zmq.Again, DecodeError):
                    continue
                if isinstance(msg, Workers):
                    return sock, msg
        return sock, None

    def poll_items(self) -> tuple:
        return (*self.broker.poll_items(), *(self.worker.poll_items() if self.worker_on else ()))

    def next_deadline(self) -> float:
        deadline = self.broker.next_deadline()
        return min(deadline, self.worker.next_deadline()) if self.worker_on else deadline

    def handle(self, events: dict) -> bool:
        """Take what is ready; True if the loop had stopped for longer than a heartbeat (the
        process was stopped, or a step blocked), so its caller excuses that silence too."""
        with held:
            return self._handle(events)

    def _handle(self, events: dict) -> bool:
        now = time.monotonic()
        stalled = now - self.last_handled > self.heartbeat
        self.last_handled = now
        if stalled:   # no deadline is further apart: nobody here could speak meanwhile
            self.broker.core.excuse_silence(now)
            self.worker.core.excuse_silence(now)
        # Each side may just have sent to the other since the wait: asking a socket costs
        # less than another round of waiting.
        self.broker.handle(with_ready(events, self.broker.sock))
        if self.worker_on:
            self.worker.handle(with_ready(events, self.worker.sock))
            if self.worker.finished():   # only if its PID namespace failed: it said why
                self.worker.end()
                self.worker_on = False
        return stalled

    def close(self) -> None:
        """Kill anything still running, stop both, remove the sandboxes."""
        with held:
            if self.worker_on:
                self.worker.stop_requested = 2
                self.worker.end()
                self.worker_on = False
            self.broker.close()
            os.close(self.lock)
            shutil.rmtree(self.workdir, ignore_errors=True)


def with_ready(events: dict, sock: zmq.Socket) -> dict:
    """`events`, with `sock` in it if a message is waiting there now."""
    if sock not in events and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        return {**events, sock: zmq.POLLIN}
    return events
