"""The embedded local cluster: a broker and a worker on threads inside rake-submit."""

from __future__ import annotations

import os
import shutil
import socket
import threading

import zmq

from broker.loop import BrokerLoop
from protocol.timing import Timing
from worker.loop import WorkerLoop
from worker.workdir import claim, fresh_workdir


class EmbeddedCluster:
    """Started when no broker is configured, so a Rakefile without HOSTS just works."""

    def __init__(self, ctx: zmq.Context, timing: Timing, slots: int | None = None, log=lambda s: None):
        self.workdir = fresh_workdir()   # also clears those of submitters killed mid-run
        self.lock = claim(self.workdir)
        endpoint = f"inproc://rake-embedded-{os.getpid()}-{id(self)}"
        self.broker = BrokerLoop(endpoint, timing, log, ctx=ctx)
        self.endpoint = self.broker.endpoint
        self.worker = WorkerLoop(self.endpoint, "embedded", socket.gethostname(),
                                 slots or os.cpu_count() or 1, self.workdir, timing, log, ctx=ctx)
        self.threads = [
            threading.Thread(target=self.broker.run, name="rake-broker", daemon=True),
            threading.Thread(target=self.worker.run, name="rake-worker", daemon=True),
        ]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        """Kill anything still running, stop both threads, remove the sandboxes."""
        self.worker.request_stop(hard=True)
        self.threads[1].join(timeout=10)
        self.broker.stop()
        self.threads[0].join(timeout=10)
        os.close(self.lock)
        shutil.rmtree(self.workdir, ignore_errors=True)
