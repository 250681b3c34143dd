"""The broker's record of jobs in flight (forwarded, no RESULT yet) and of the latest results."""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice

from protocol.messages import MAX_SEEN, Job, Result
from protocol.status import EXCERPT, cut

MAX_FLIGHT = 10_000     # jobs remembered at once; beyond that the oldest tenth is dropped (counted)
MAX_RECENT = 50
MAX_ABANDONED = 1024    # dropped workers whose jobs are remembered, should they come back


# Rows are plain tuples: a NamedTuple costs ten times as much to make, on the hot path.
#   jobs[(client, job)] = (worker, command excerpt, attempt, when the broker forwarded it,
#                          whether a later job of that client had gone to that worker before)
#   recent[i]           = (when, worker, (job, client, status, code, elapsed, error) of the Result,
#                          its jobs row or None, the submitter's key under CURVE, or None)
#   (not the Result itself: one of 100,000 outputs kept 50 times held hundreds of MB)


class Flight:
    """Keyed by (client, job), in the order the broker forwarded the jobs.

    Only what a status needs is kept, and only the hot path's own work is done per message:
    a tuple per JOB and one per RESULT; rows are built when a status is asked for.
    """

    def __init__(self, limit: int = MAX_FLIGHT, recent: int = MAX_RECENT):
        self.limit = limit
        self.jobs: dict[tuple[str, int], tuple] = {}
        self.recent: deque[tuple] = deque(maxlen=recent)
        self.dropped = 0    # forgotten because the table was full: they show in no status
        self.abandoned: OrderedDict[str, list[tuple[str, int]]] = OrderedDict()
        self.highest: dict[tuple[str, str], int] = {}   # (worker, client) -> highest job forwarded

    def sent(self, now: float, client: str, msg: Job) -> None:
        jobs = self.jobs
        key = (client, msg.job)
        if len(jobs) >= self.limit and key not in jobs:
            jobs = self._drop_oldest()
        command = msg.command
        if len(command) > EXCERPT:
            command = cut(command, EXCERPT)
        pair = (msg.worker, client)
        late = msg.job < self.highest.get(pair, 0)   # a resend (worker-busy, queue full)
        if not late:
            self.highest[pair] = msg.job
        jobs[key] = (msg.worker, command, msg.attempt, now, late)

    def _drop_oldest(self) -> dict:
        """Forget the oldest tenth at once: deleting one at a time from the front of a dict
        leaves holes that make finding the next oldest slower and slower."""
        keep = self.limit - max(1, self.limit // 10)
        self.dropped += len(self.jobs) - keep
        self.jobs = dict(islice(self.jobs.items(), len(self.jobs) - keep, None))
        return self.jobs

    def ended(self, now: float, worker: str, msg: Result, forwarded: bool = True, owner: str | None = None) -> None:
        """A RESULT came from `worker`: the job leaves the table, but only if it was on that
        worker (anyone may send a RESULT); if forwarded, it joins the recent ones, with its
        submitter's key (`owner`: whose status shows it, even after the submitter has left)."""
        key = (msg.client, msg.job)
        entry = self.jobs.get(key)
        if entry is not None and entry[0] == worker:
            del self.jobs[key]
        else:
            entry = None
        if forwarded:
            ended = (msg.job, msg.client, msg.status, msg.code, msg.elapsed, msg.error)
            self.recent.append((now, worker, ended, entry, owner))

    def forget(self, client: str, job: int) -> None:
        """Its RESULT was dropped, or its submitter cancelled it with kill and forgot it."""
        self.jobs.pop((client, job), None)

    def worker_gone(self, worker: str) -> None:
        """Its jobs leave the table. Their submitters now run them elsewhere, so should the
        worker come back (it was frozen, or cut off), it must drop them: they are kept for
        take_abandoned()."""
        keys = [k for k, f in self.jobs.items() if f[0] == worker]
        for key in keys:
            del self.jobs[key]
        self._forget_highest(0, worker)
        if keys:
            self.abandoned[worker] = keys
            while len(self.abandoned) > MAX_ABANDONED:
                self.abandoned.popitem(last=False)

    def take_abandoned(self, worker: str) -> list[tuple[str, int]]:
        """(client, job) of the jobs it held when it was dropped; forgotten once taken."""
        return self.abandoned.pop(worker, [])

    def unseen(self, worker: str, load) -> list[tuple[str, int]]:
        """(client, job) of the jobs sent to `worker` past the last one its READY says it
        received from that client (`load.seen`): lost with the connection it replaced. And
        any sent after a later one of its client (resent after `worker-busy`): `seen`, the
        highest job received, says nothing of those. If it had them after all, the
        submitter's resend is a duplicate the worker ignores."""
        seen = dict(load.seen)
        complete = len(seen) < MAX_SEEN   # beyond that, a client left out may still have been seen
        return [k for k, f in self.jobs.items()
                if f[0] == worker and (k[0] in seen or complete) and (k[1] > seen.get(k[0], 0) or f[4])]

    def client_gone(self, client: str) -> int:
        """Forget a submitter's jobs; how many it had in flight, counting those on workers
        dropped before it (a cut link drops them first: its jobs were out there all the same)."""
        keys = [k for k in self.jobs if k[0] == client]
        for key in keys:
            del self.jobs[key]
        self._forget_highest(1, client)
        return len(keys) + sum(1 for held in self.abandoned.values() for k in held if k[0] == client)

    def _forget_highest(self, side: int, peer: str) -> None:
        for pair in [p for p in self.highest if p[side] == peer]:
            del self.highest[pair]
