"""Results a worker has sent but no submitter has acknowledged yet, kept for resending.

A broker that restarts, or a link that drops, can lose a RESULT in flight. The worker keeps
each one until the submitter's ACK comes back through the broker, sends them all again after
re-registering, and resends any that stay unacknowledged for a liveness window.
"""

from __future__ import annotations

from collections import OrderedDict

from protocol.parcel import blob_bytes

Key = tuple[str, int]

MAX_KEPT = 1024
MAX_BYTES = 512 << 20
GIVE_UP_AFTER = 20      # liveness windows; a submitter silent that long is not coming back


def _size(frames) -> int:
    return blob_bytes(frames)   # of a Parcel (to the embedded broker), its blobs only


class Outbox:
    def __init__(self, window: float):
        self.window = window
        # first sent, last sent, frames; kept in order of last sending, so the oldest is first
        self.kept: OrderedDict[Key, tuple[float, float, list]] = OrderedDict()
        self.bytes = 0
        self.gone_clients: OrderedDict[str, None] = OrderedDict()
        # Finished results of a submitter the broker dropped (silent past the window: often a
        # link, or the broker's own, that came back): not sent, but if that submitter is back
        # and sends the same job again, it is answered from here rather than run twice.
        # Kept as long as an unacknowledged result (a submitter that has not said HELLO again by
        # then never will: it gives its broker up after --broker-wait), in order of parking.
        self.parked: OrderedDict[Key, tuple[float, list]] = OrderedDict()

    def keep(self, key: Key, frames: list, now: float) -> bool:
        """Remember a sent result; False if its submitter is known to be gone (do not send)."""
        if key[0] in self.gone_clients:
            return False
        self.kept[key] = (now, now, frames)
        self.bytes += _size(frames)
        self._trim()
        return True

    def get(self, key: Key) -> list | None:
        entry = self.kept.get(key)
        if entry:
            return entry[2]
        parked = self.parked.get(key)
        return parked[1] if parked else None

    def ack(self, client: str, jobs) -> None:
        for job in jobs:
            self._forget((client, job))
            parked = self.parked.pop((client, job), None)
            if parked is not None:
                self.bytes -= _size(parked[1])

    def drop_client(self, client: str, now: float) -> None:
        self.gone_clients[client] = None
        while len(self.gone_clients) > MAX_KEPT:
            self.gone_clients.popitem(last=False)
        for key in [k for k in self.kept if k[0] == client]:
            frames = self.kept[key][2]
            self._forget(key)
            self.parked[key] = (now, frames)
            self.bytes += _size(frames)
        self._trim()

    def revive(self, client: str, now: float) -> None:
        """A job from `client`: it is back. Its parked results are kept again until ACKed."""
        self.gone_clients.pop(client, None)
        for key in [k for k in self.parked if k[0] == client]:
            _, frames = self.parked.pop(key)
            self.kept[key] = (now, now, frames)

    def _trim(self) -> None:
        while self.parked and (len(self.kept) + len(self.parked) > MAX_KEPT or self.bytes > MAX_BYTES):
            _, (_, frames) = self.parked.popitem(last=False)
            self.bytes -= _size(frames)
        while len(self.kept) > MAX_KEPT or self.bytes > MAX_BYTES:
            self._forget(next(iter(self.kept)))

    def everything(self, now: float) -> list[list]:
        """All kept results, to send again after re-registering with a broker. Their clock
        starts again too: time spent without a broker (its outage) is no sign that their
        submitters are gone, and giving up on a result makes its action run again."""
        for key, (_, _, frames) in list(self.kept.items()):
            self.kept[key] = (now, now, frames)   # order unchanged: all sent now
        return [frames for _, _, frames in self.kept.values()]

    def due(self, now: float) -> list[list]:
        """Results unacknowledged for a window: send again (or give up on very old ones)."""
        while self.parked:   # oldest first: that submitter did not come back
            key, (since, frames) = next(iter(self.parked.items()))
            if now - since <= GIVE_UP_AFTER * self.window:
                break
            del self.parked[key]
            self.bytes -= _size(frames)
        out = []
        while self.kept:
            key, (first, last, frames) = next(iter(self.kept.items()))
            if now - last <= self.window:
                break   # the oldest is not due, so none is
            if now - first > GIVE_UP_AFTER * self.window:
                self._forget(key)
                continue
            self.kept[key] = (first, now, frames)
            self.kept.move_to_end(key)
            out.append(frames)
        return out

    def awaiting(self, now: float) -> bool:
        """Whether a result sent less than a window ago is still unacknowledged."""
        return any(now - first < self.window for first, _, _ in self.kept.values())

    def next_deadline(self) -> float | None:
        if not self.kept:
            return None
        _, last, _ = next(iter(self.kept.values()))
        return last + self.window

    def _forget(self, key: Key) -> None:
        entry = self.kept.pop(key, None)
        if entry is not None:
            self.bytes -= _size(entry[2])
