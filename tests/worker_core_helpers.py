"""A worker core on a fake clock and the builders its tests share (worker/core.py)."""

from protocol import Job, decode, encode
from protocol.timing import Timing
from worker.core import Send, Start, WorkerCore


TIMING = Timing(heartbeat=1.0, liveness=3, backoff_min=1.0, backoff_max=8.0)
SUB, SUB2 = "53aa", "53bb"


def worker(slots=2, now=0.0):
    return WorkerCore("w1", "host-a", slots, TIMING, now)


def job(n, client=SUB, **kw):
    return Job(job=n, worker="57ff", command=f"step {n}", client=client, **kw)


def deliver(w, n, now=1.0, client=SUB, blobs=(), **kw):
    return w.on_frames(now, encode(job(n, client, **kw), list(blobs)))


def sent(effects):
    """The messages among `effects`, decoded."""
    return [decode(e.frames)[0] for e in effects if isinstance(e, Send)]


def starts(effects):
    return [e.key for e in effects if isinstance(e, Start)]
