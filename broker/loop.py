"""The broker's socket loop: one ROUTER, polled until the core's next deadline."""

from __future__ import annotations

import time
from typing import Callable

import zmq

from broker.core import BrokerCore
from protocol.timing import Timing
from rake_common.logsetup import warn

MAX_MESSAGE = 1 << 30     # per frame: a file travels whole in one blob frame for now
BATCH = 256               # messages handled per wake-up before timers get a turn


def make_router(ctx: zmq.Context, bind: str) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # an unknown peer is an error, not a silent drop
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)    # a reconnecting peer takes over its identity
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
    sock.setsockopt(zmq.LINGER, 0)
    if bind.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    sock.bind(bind)
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return sock, endpoint


class BrokerLoop:
    """Owns the ROUTER socket; `stop()` may be called from another thread."""

    def __init__(self, bind: str, timing: Timing, log: Callable[[str], None],
                 ctx: zmq.Context | None = None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock, self.endpoint = make_router(self.ctx, bind)
        self.core = BrokerCore(timing, time.monotonic(), log)
        self.log = log
        self._wake_addr = f"inproc://broker-stop-{id(self)}"
        self._wake = self.ctx.socket(zmq.PAIR)
        self._wake.bind(self._wake_addr)
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        poke = self.ctx.socket(zmq.PAIR)
        poke.connect(self._wake_addr)
        poke.send(b"stop")
        poke.close(linger=100)

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        try:
            while not self._stopping:
                timeout = min(3600.0, max(0.0, self.core.next_deadline() - time.monotonic()))
                events = dict(poller.poll(timeout * 1000 + 1))
                if self.sock in events:
                    self._drain()
                self._send_all(self.core.on_tick(time.monotonic()))
        finally:
            self.sock.close(linger=0)
            self._wake.close(linger=0)

    def _drain(self) -> None:
        for _ in range(BATCH):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = frames[0].bytes.hex()
            self._send_all(self.core.on_frames(time.monotonic(), peer, frames[1:]))

    def _send_all(self, sends) -> None:
        for peer, frames in sends:
            try:
                self.sock.send_multipart([bytes.fromhex(peer), *frames], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                # Its queue is full: a slow peer is not a dead one; heartbeats decide that.
                self.core.stats["dropped_full"] += 1
                warn(self.log, f"queue to {peer[:16]} is full; message dropped")
            except zmq.ZMQError as e:
                if e.errno != zmq.EHOSTUNREACH:
                    raise
                self._send_all(self.core.on_unroutable(peer))
