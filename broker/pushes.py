"""Which worker rows submitters have not been told about yet, and when to tell them:
changes are coalesced for `delay` seconds, a departure goes out at once."""

from __future__ import annotations

from broker.table import PeerTable
from protocol import Workers

# Pieces small enough for one header whatever the rows hold: a row is at most about 2.5 KB
# (a 256-character name and host in 4-byte characters), a gone id 66 bytes.
ROWS_PER_MESSAGE = 256
GONE_PER_MESSAGE = 4096


class Pushes:
    def __init__(self, delay: float):
        self.delay = delay
        self.changed: set[str] = set()    # worker rows to push to submitters
        self.gone: set[str] = set()       # worker ids to announce as gone
        self.owed: set[str] = set()       # submitters a push to was dropped: the whole table next
        self.due: float | None = None

    def changed_row(self, now: float, worker: str) -> None:
        self.changed.add(worker)
        if self.due is None:
            self.due = now + self.delay

    def worker_gone(self, worker: str) -> None:
        self.changed.discard(worker)
        self.gone.add(worker)
        self.due = 0.0   # at once, even if a coalesced push was waiting: its jobs must move now

    def owe_table(self, now: float, submitter: str) -> None:
        """A push to `submitter` was dropped (its queue was full): a delta's `gone` is never
        said again, so it gets the whole table, after the delay (the queue may drain by then)."""
        self.owed.add(submitter)
        if self.due is None:
            self.due = now + self.delay

    def flush(self, now: float, table: PeerTable) -> list[tuple[str, Workers]]:
        """(submitter, WORKERS delta) for each submitter (several when many rows changed),
        once the delay is over; the whole table to those owed one."""
        if self.due is None or now < self.due:
            return []
        changed = [w for w in sorted(self.changed) if w in table.workers]
        gone = tuple(sorted(self.gone))
        owed = self.owed & set(table.submitters)
        self.changed.clear()
        self.gone.clear()
        self.owed.clear()
        self.due = None
        deltas = [(sub, piece) for sub in table.submitters if sub not in owed
                  for piece in pieces(False, [table.info_for(w, sub) for w in changed], gone)]
        return deltas + [(sub, piece) for sub in sorted(owed) for piece in full_table(table, sub)]


def full_table(table: PeerTable, submitter: str) -> list[Workers]:
    """The whole table for one submitter: one WORKERS, or pieces chained with `more`."""
    return pieces(True, [table.info_for(w, submitter) for w in sorted(table.workers)], ())


def pieces(full: bool, rows: list, gone: tuple) -> list[Workers]:
    """WORKERS messages carrying `rows` and `gone`, each within the header limit. A delta's
    pieces stand alone; a full table's are marked `more` but the last, as a submitter must
    see all of it before counting any worker missing."""
    count = max(1, -(-len(rows) // ROWS_PER_MESSAGE), -(-len(gone) // GONE_PER_MESSAGE))
    return [Workers(full=full, more=full and i < count - 1,
                    workers=tuple(rows[i * ROWS_PER_MESSAGE:(i + 1) * ROWS_PER_MESSAGE]),
                    gone=tuple(gone[i * GONE_PER_MESSAGE:(i + 1) * GONE_PER_MESSAGE]))
            for i in range(count)]
