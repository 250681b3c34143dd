"""The embedded local cluster: a broker and a worker inside rake-submit, driven by its loop."""

from __future__ import annotations

import os
import socket
import time
from collections import deque

import zmq

from broker.loop import BrokerLoop
from protocol import Hello, Workers
from protocol.timing import Timing
from protocol.version import VERSION
from rake_common.config import usable_cpus
from rake_common.tree import remove_tree
from submitter.brokerlink import LocalLink
from submitter.interrupts import held
from worker.loop import WorkerLoop
from worker.workdir import claim, fresh_workdir, noexec_warning

PUMP = 4096   # messages passed on per step before the loop's timers and polls get a turn


class EmbeddedCluster:
    """Started when no broker is configured, so a Rakefile without HOSTS just works.

    It has no thread of its own: the submitter's loop polls the worker's descriptors with its
    own and calls handle(). Nor does a message between the three go through a socket: the
    broker, the worker and the submitter hand each other Parcels (the frozen messages as they
    are) through the queues below, in order, with no encoding and no wake-up. Decoding,
    encoding and socket calls were a third of the cluster's CPU per action."""

    def __init__(self, ctx: zmq.Context, timing: Timing, slots: int | None = None, log=lambda s: None):
        self.ctx = ctx
        self.workdir = fresh_workdir()   # also clears those of submitters killed mid-run
        try:
            self.lock = claim(self.workdir)
        except OSError:   # e.g. a TMPDIR so long that the lock's path is too long
            remove_tree(self.workdir)
            raise
        noexec = noexec_warning(self.workdir, "set TMPDIR to a directory elsewhere")
        self.warnings = [noexec] if noexec else []   # for the submitter to show
        endpoint = f"inproc://rake-embedded-{os.getpid()}-{id(self)}"
        self.broker = BrokerLoop(endpoint, timing, log, ctx=ctx)
        self.endpoint = self.broker.endpoint
        self.worker = WorkerLoop(self.endpoint, "embedded", socket.gethostname(),
                                 slots or usable_cpus(), self.workdir, timing, log, ctx=ctx)
        self.to_broker: deque = deque()   # (peer id, Parcel or frames)
        self.to_worker: deque = deque()
        self.links: dict[str, LocalLink] = {}   # the submitters in this process, by peer id
        self.worker_peer = self.worker.identity.hex()
        self.broker.core.local.add(self.worker_peer)
        self.broker.local_out = self._from_broker
        self.worker.hand_to(lambda item: self.to_broker.append((self.worker_peer, item)))
        self.worker.begin()
        self.worker_on = True
        self.heartbeat = timing.heartbeat
        self.last_handled = time.monotonic()

    def connect(self, identity: bytes, name: str, timeout: float) -> tuple[LocalLink, Workers | None]:
        """A submitter's link to this broker, and the broker's answer to its HELLO (None if
        none came within `timeout`: then the session says hello again itself)."""
        peer = identity.hex()
        link = self.links[peer] = LocalLink(peer, self.to_broker)
        self.broker.core.local.add(peer)
        link.send(link.pack(Hello(version=VERSION, name=name)))
        deadline = time.monotonic() + timeout
        poller = zmq.Poller()
        for item in self.poll_items():
            poller.register(item, zmq.POLLIN)
        while time.monotonic() < deadline:
            self.handle(dict(poller.poll(max(0.0, min(deadline, self.next_deadline()) - time.monotonic()) * 1000 + 1)))
            while link.inbox:
                msg = link.receive().msg
                if isinstance(msg, Workers):
                    return link, msg
        return link, None

    def poll_items(self) -> tuple:
        # Not the broker's socket: nobody else can reach its inproc endpoint, and its peers
        # here hand it messages through the queues. The worker's are its job descriptors.
        return self.worker.poll_items() if self.worker_on else ()

    def next_deadline(self) -> float:
        if self.to_broker or self.to_worker:
            return 0.0   # messages to pass on: no waiting
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
        self.broker.handle(events)
        if self.worker_on:
            self.worker.handle(events)
            if self.worker.finished():   # only if its PID namespace failed: it said why
                self.worker.end()
                self.worker_on = False
        self._pass_on()
        return stalled

    def _pass_on(self) -> None:
        """Hand the queued messages over, and what they lead to, up to PUMP of them."""
        for _ in range(PUMP):
            if self.to_broker:
                self.broker.take_local(*self.to_broker.popleft())
            elif self.to_worker:
                item = self.to_worker.popleft()
                if self.worker_on:
                    self.worker.take_local(item)
            else:
                return

    def _from_broker(self, peer: str, parcel) -> None:
        if peer == self.worker_peer:
            self.to_worker.append(parcel)
        elif peer in self.links:
            self.links[peer].inbox.append(parcel)

    def pause(self, resume: bool) -> None:
        """Ctrl-Z and fg of rake-submit: its embedded worker's actions stop and go on with it."""
        if self.worker_on:
            self.worker.jobs.pause(resume)

    def close(self) -> None:
        """Kill anything still running, stop both, remove the sandboxes."""
        with held:
            if self.worker_on:
                self.worker.stop_requested = 2
                self.worker.end()
                self.worker_on = False
            self.broker.close()
            os.close(self.lock)
            remove_tree(self.workdir)
