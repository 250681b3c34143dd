"""What the broker does when a peer leaves (BYE, silence, a closed connection)."""

from __future__ import annotations

from protocol import Cancel


class Departures:
    """Forgetting peers. Mixed into BrokerCore (broker/core.py), whose table, pushes, flight,
    asked and log it uses."""

    def _drop(self, peer: str, why: str, now: float = 0.0) -> list:
        """Forget a peer. A worker's departure is pushed; a submitter's jobs are cancelled."""
        row = self.table.workers.get(peer) or self.table.submitters.get(peer)
        role = self.table.forget(peer)
        if role == "worker":   # rejoined on a new connection (after a stall): only the old one ended
            again = any((w.name, w.host) == (row.name, row.host) for w in self.table.workers.values())
            self.log(f"worker {row.name}: its previous connection closed ({why})" if again else f"worker {row.name} left: {why}")
            self.pushes.worker_gone(peer)
            self.flight.worker_gone(peer)
        self.asked.forget(peer)
        if role != "submitter":
            return []
        # A run cut off with work here, not one that ended nor a candidate broker it passed
        # over (it says hello to every one of HOSTS): an operator asks why its jobs ran again.
        if self.flight.client_gone(peer) and not why.startswith("said bye"):
            self.log(f"submitter {row.name or peer[:16]} dropped: {why}; its jobs are cancelled")
        return self._gone_everywhere(now, peer)

    def _gone_everywhere(self, now: float, peer: str) -> list:
        """A submitter is gone: remembered as such, and every worker drops its jobs."""
        self.departed[peer] = None
        while len(self.departed) > 4096:
            self.departed.popitem(last=False)
        # Every worker is told, not only those whose last report showed this submitter's
        # jobs: a job may be on its way to a worker whose report predates it.
        cancel = lambda w: Cancel(job=0, worker=w, kill=True, client=peer, everything=True)  # noqa: E731
        return [self._send(now, w, cancel(w)) for w in list(self.table.workers)]
