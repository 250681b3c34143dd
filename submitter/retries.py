"""Retries waiting for a worker they have not tried yet, and for how long they may; jobs
sent again for free; how the workers tried are named when an action is given up."""

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


@dataclass
class FreeRequeues:
    """A job a draining worker gave back unstarted, or one cut off when its worker reconnected,
    is sent again without using an attempt, up to `most` times per action: a worker cannot keep
    one circling by saying it drains or by reconnecting."""
    most: int
    count: dict[int, int] = field(default_factory=dict)   # action -> free requeues so far

    def take(self, index: int) -> bool:
        if self.count.get(index, 0) >= self.most:
            return False
        self.count[index] = self.count.get(index, 0) + 1
        return True


def listed(names: list[str]) -> str:
    """The workers tried: "w1, w2, w3", a repeated one once with a count: "embedded (3 times)"."""
    return ", ".join(n if names.count(n) == 1 else f"{n} ({names.count(n)} times)" for n in dict.fromkeys(names))
