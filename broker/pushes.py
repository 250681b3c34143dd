"""Which worker rows submitters have not been told about yet, and when to tell them:
changes are coalesced for `delay` seconds, a departure goes out at once."""

from __future__ import annotations

from broker.table import PeerTable
from protocol import Workers


class Pushes:
    def __init__(self, delay: float):
        self.delay = delay
        self.changed: set[str] = set()    # worker rows to push to submitters
        self.gone: set[str] = set()       # worker ids to announce as gone
        self.due: float | None = None

    def changed_row(self, now: float, worker: str) -> None:
        self.changed.add(worker)
        if self.due is None:
            self.due = now + self.delay

    def worker_gone(self, worker: str) -> None:
        self.changed.discard(worker)
        self.gone.add(worker)
        self.due = self.due or 0.0

    def flush(self, now: float, table: PeerTable) -> list[tuple[str, Workers]]:
        """(submitter, WORKERS delta) for each submitter, once the delay is over."""
        if self.due is None or now < self.due:
            return []
        changed = [w for w in sorted(self.changed) if w in table.workers]
        gone = tuple(sorted(self.gone))
        self.changed.clear()
        self.gone.clear()
        self.due = None
        return [(sub, Workers(full=False, workers=tuple(table.info_for(w, sub) for w in changed), gone=gone))
                for sub in table.submitters]


def full_table(table: PeerTable, submitter: str) -> Workers:
    rows = tuple(table.info_for(w, submitter) for w in sorted(table.workers))
    return Workers(full=True, workers=rows)
