"""The submitter's view of the worker table, corrected by its own jobs in flight; picks workers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from protocol.messages import Load, WorkerInfo, Workers


@dataclass
class WorkerView:
    """Rows as the broker pushed them (or as results reported), plus my jobs on each worker."""
    me: str
    rows: dict[str, WorkerInfo] = field(default_factory=dict)
    mine: dict[str, set[int]] = field(default_factory=dict)   # worker id -> my job ids there
    names: dict[str, str] = field(default_factory=dict)       # kept after a worker is gone

    def apply(self, msg: Workers) -> list[str]:
        """Take a pushed table or delta; returns the ids of workers that are gone."""
        gone = set(msg.gone)
        if msg.full:
            gone |= set(self.rows) - {w.id for w in msg.workers}
        for wid in gone:
            self.rows.pop(wid, None)
        for info in msg.workers:
            old = self.rows.get(info.id)
            if old is None or info.seq >= old.seq:
                self.rows[info.id] = info
                self.names[info.id] = info.name
        return sorted(gone)

    def apply_load(self, worker: str, load: Load) -> None:
        """A result carries the worker's load right after it ended: fresher than the table."""
        old = self.rows.get(worker)
        if old is not None and load.seq > old.seq:
            self.rows[worker] = replace(
                old, slots=load.slots, queue=load.queue, running=load.running, seq=load.seq,
                seen=load.seen_from(self.me), draining=load.draining)

    def sent(self, worker: str, job: int) -> None:
        self.mine.setdefault(worker, set()).add(job)

    def ended(self, worker: str, job: int) -> None:
        self.mine.get(worker, set()).discard(job)

    def cost(self, worker: str) -> float:
        """(queued + running + mine not yet in a report) / slots."""
        row = self.rows[worker]
        unseen = sum(1 for j in self.mine.get(worker, ()) if j > row.seen)
        return (row.queue + unseen) / row.slots

    def pick_worker(self, below: float, avoid: frozenset[str] = frozenset()) -> str | None:
        """Least-cost worker whose cost is under `below`; ties go to the lower name, then id.

        Workers in `avoid` (already tried for this action) are used only when no other fits.
        """
        def rank(wid: str) -> tuple:
            return (wid in avoid, self.cost(wid), self.rows[wid].name, wid)
        fits = [w for w, row in self.rows.items() if not row.draining and self.cost(w) < below]
        return min(fits, key=rank, default=None)

    def name(self, worker: str) -> str:
        return self.names.get(worker, worker[:12])
