"""The broker's one table of live peers: workers with their load, and submitters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from protocol.messages import MAX_SEEN, Load, WorkerInfo
from protocol.schema import U32


@dataclass
class WorkerRow:
    id: str
    name: str
    host: str
    version: str
    load: Load
    last_heard: float
    user: str = ""       # the CURVE user id it registered with ("" without authentication)


@dataclass
class SubmitterRow:
    id: str
    name: str
    last_heard: float
    user: str = ""


@dataclass
class PeerTable:
    """Owns who is connected. Everything else (idle, least loaded) is derived from here."""
    workers: dict[str, WorkerRow] = field(default_factory=dict)
    submitters: dict[str, SubmitterRow] = field(default_factory=dict)
    last_sent: dict[str, float] = field(default_factory=dict)

    def role(self, peer: str) -> str | None:
        if peer in self.workers:
            return "worker"
        if peer in self.submitters:
            return "submitter"
        return None

    def row(self, peer: str) -> WorkerRow | SubmitterRow | None:
        return self.workers.get(peer) or self.submitters.get(peer)

    def touch(self, peer: str, now: float) -> None:
        row = self.row(peer)
        if row is not None:
            row.last_heard = now

    def excuse(self, now: float) -> None:
        """Count every peer as heard `now` (see BrokerCore.excuse_silence)."""
        for row in [*self.workers.values(), *self.submitters.values()]:
            row.last_heard = max(row.last_heard, now)

    def update_load(self, peer: str, load: Load) -> bool:
        """Take a newer load report; older ones (by seq) lose. True when the row changed."""
        row = self.workers.get(peer)
        if row is None or load.seq < row.load.seq:
            return False
        changed = not load.same_state(row.load)
        row.load = load
        return changed

    def count_sent(self, peer: str, client: str, job: int) -> bool:
        """A JOB forwarded to worker `peer`: counted in its row, as seen from `client`, until
        the worker's next report says as much, so that other submitters see it busier at
        once (started together, each saw every worker idle). True when the row changed."""
        row = self.workers.get(peer)
        seen = dict(row.load.seen) if row is not None else {}
        if row is None or (client not in seen and len(seen) >= MAX_SEEN):
            return False
        seen[client] = max(seen.get(client, 0), job)
        # At most U32: a worker may say so, and a row past it would fail to encode in every table.
        row.load = replace(row.load, queue=min(row.load.queue + 1, U32), seen=tuple(sorted(seen.items())))
        return True

    def forget(self, peer: str) -> str | None:
        """Drop a peer; returns the role it had."""
        self.last_sent.pop(peer, None)
        if self.workers.pop(peer, None) is not None:
            return "worker"
        if self.submitters.pop(peer, None) is not None:
            return "submitter"
        return None

    def silent_since(self, cutoff: float) -> list[str]:
        """Peers silent since before `cutoff`: silent for *more* than the liveness window."""
        rows = [*self.workers.values(), *self.submitters.values()]
        return [r.id for r in rows if r.last_heard < cutoff]

    def oldest_heard(self) -> float | None:
        rows = [*self.workers.values(), *self.submitters.values()]
        return min((r.last_heard for r in rows), default=None)

    def info_for(self, worker: str, submitter: str) -> WorkerInfo:
        row = self.workers[worker]
        load = row.load
        return WorkerInfo(
            id=row.id, name=row.name, host=row.host, slots=load.slots, queue=load.queue,
            running=load.running, seq=load.seq, seen=load.seen_from(submitter),
            version=row.version, draining=load.draining, full=load.full,
        )
