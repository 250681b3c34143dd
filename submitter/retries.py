"""Retries waiting for a worker they have not tried yet, and for how long they may."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RetryWaits:
    """A retry first waits, up to `window` seconds, for a worker it has not tried: one that
    fails every job at once always has room, and would take every attempt. After that it
    is `relaxed` and takes any worker (tried ones last)."""
    window: float
    since: dict[int, float] = field(default_factory=dict)   # action -> waiting since
    relaxed: set[int] = field(default_factory=set)

    def waiting(self, index: int, now: float) -> None:
        self.since.setdefault(index, now)

    def placed(self, index: int) -> None:
        self.since.pop(index, None)
        self.relaxed.discard(index)

    def age(self, now: float, pending) -> None:
        """Relax the retries whose window has passed; forget those no longer pending (placed,
        halted), so no deadline of theirs stays behind to wake the loop for nothing."""
        if not self.since and not self.relaxed:
            return   # the usual case, on every scheduling pass: no work at all
        pending = set(pending)
        for index, since in list(self.since.items()):
            if index not in pending or now - since >= self.window:
                del self.since[index]
                if index in pending:
                    self.relaxed.add(index)
        self.relaxed &= pending

    def next_deadline(self) -> float | None:
        return min(self.since.values()) + self.window + 1e-3 if self.since else None
