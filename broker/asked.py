"""The transfers peers have asked for, so the broker passes on only CHUNKs someone wanted.

A CHUNK nobody asked for would still be forwarded whole (up to the frame limit), and a
hostile peer sending them to a worker would queue the broker's heartbeats to it behind
them until it took us for silent, reconnected and lost its jobs. A holder only ever sends
chunks in answer to a WANT, and every WANT passes through here: so a CHUNK from S to R of
a digest goes on only if R has asked S for that digest lately."""

from __future__ import annotations

from collections import OrderedDict

# A holder forgets a stream idle this long (worker/transfer.py STREAM_IDLE): it sends no
# more of it without a fresh WANT. Far above a liveness window, as a holder's slow uplink
# can keep its chunks queued that long behind the ones it sent to others.
ASKED_IDLE = 600.0
# A worker fetches at most 64 blobs at once, a submitter 4; the rest are finished ones.
ASKED_PER_PEER = 4096


class Asked:
    """Times only, passed in; the broker core decides what to forward."""

    def __init__(self, idle: float = ASKED_IDLE, per_peer: int = ASKED_PER_PEER):
        self.idle, self.per_peer = idle, per_peer
        # requester -> (holder, digest) -> when last asked or served, oldest first
        self.by_requester: dict[str, OrderedDict[tuple[str, str], float]] = {}

    def wanted(self, now: float, requester: str, holder: str, digest: str) -> None:
        """Any WANT, a restart or more credit: after a restart of ours the receivers ask
        again (worker/incoming.py ask_again), and that opens the way for the chunks."""
        asks = self.by_requester.setdefault(requester, OrderedDict())
        self._touch(asks, (holder, digest), now)
        while len(asks) > self.per_peer or now - next(iter(asks.values())) > self.idle:
            asks.popitem(last=False)   # a flood of WANTs evicts only its own sender's

    def may_send(self, now: float, holder: str, requester: str, digest: str) -> bool:
        asks = self.by_requester.get(requester)
        when = None if asks is None else asks.get((holder, digest))
        if when is None or now - when > self.idle:
            return False
        self._touch(asks, (holder, digest), now)   # a stream in progress stays
        return True

    def forget(self, peer: str) -> None:
        """It left: whatever it asked for was on the link we dropped (it asks again)."""
        self.by_requester.pop(peer, None)

    def excuse(self, now: float) -> None:
        """Our loop was stopped: no chunk could come meanwhile."""
        for asks in self.by_requester.values():
            for key in asks:
                asks[key] = max(asks[key], now)

    @staticmethod
    def _touch(asks: OrderedDict, key: tuple[str, str], now: float) -> None:
        asks[key] = now
        asks.move_to_end(key)
