"""What the broker has forwarded to each submitter as RESULTs and not seen acknowledged.

A submitter acknowledges every RESULT right after reading it (docs/protocol.md, ACK), so
what is unacknowledged is, give or take a round trip, what sits in the broker's socket
queue for that submitter. That queue is bounded in messages (1000), not bytes, and a RESULT
may carry 32 MiB of stdout and stderr, which its worker sends again every liveness window
until acknowledged: a submitter that keeps heartbeating but stops reading made the broker
hold over 10 GB. Past the budget a RESULT is not forwarded; its worker sends it again a
window later, by when a submitter that reads has acknowledged what it had.
"""

from __future__ import annotations

MAX_BYTES = 512 << 20    # unacknowledged RESULT bytes per submitter
MAX_RESULTS = 65536      # and results (one ACK holds at most this many jobs)
HEADER = 4096            # counted for each result, whatever its frames: empty ones add up too


class ResultBacklog:
    def __init__(self, max_bytes: int = MAX_BYTES, max_results: int = MAX_RESULTS):
        self.max_bytes, self.max_results = max_bytes, max_results
        self.owed: dict[str, dict[tuple[str, int], int]] = {}   # client -> (worker, job) -> bytes
        self.bytes: dict[str, int] = {}

    def admit(self, client: str, worker: str, job: int, size: int) -> bool:
        """Whether a RESULT of `size` bytes may go to `client` now (then it is counted). One
        goes whatever its size when nothing is owed, so no result is held back for ever."""
        owed, total, size = self.owed.setdefault(client, {}), self.bytes.get(client, 0), size + HEADER
        if owed and (total + size > self.max_bytes or len(owed) >= self.max_results):
            return False
        owed[(worker, job)] = owed.get((worker, job), 0) + size   # a resend counts again: it is queued again
        self.bytes[client] = total + size
        return True

    def acked(self, client: str, worker: str, jobs) -> None:
        owed = self.owed.get(client)
        if not owed:
            return
        for job in jobs:
            self.bytes[client] -= owed.pop((worker, job), 0)
        if not owed:
            self.forget(client)

    def forget(self, peer: str) -> None:
        """Dropped by the broker: what was queued for it (a submitter) is no longer counted
        against it, nor what came from it (a worker, which will never send those results
        again: counted for ever, they would hold back every later result of that submitter)."""
        self.owed.pop(peer, None)
        self.bytes.pop(peer, None)
        for client, owed in list(self.owed.items()):
            for key in [key for key in owed if key[0] == peer]:
                self.bytes[client] -= owed.pop(key)
            if not owed:
                self.owed.pop(client)
                self.bytes.pop(client)
