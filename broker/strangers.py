"""Submitters that workers name (their jobs, their results) but that never said HELLO to this
broker: after a restart of ours, one that does not within a window is gone (a live one says
it at its next try to reconnect: up to 32 s, plus a liveness window)."""

from __future__ import annotations

import math

MAX_STRANGERS = 4096   # as many as `departed` remembers: a flood of made-up ids stays bounded


class Strangers:
    """Its own times only; the broker core decides what to send (BrokerCore.on_tick)."""

    def __init__(self, window: float):
        self.window = window
        self.first_named: dict[str, float] = {}   # submitter id -> when a worker first named it

    def named(self, now: float, clients) -> None:
        for client in clients:
            if client not in self.first_named and len(self.first_named) < MAX_STRANGERS:
                self.first_named[client] = now

    def greeted(self, client: str) -> None:
        self.first_named.pop(client, None)

    def excuse(self, now: float) -> None:
        """Our loop was stopped: nobody could say HELLO meanwhile."""
        self.first_named = {c: max(t, now) for c, t in self.first_named.items()}

    def overdue(self, now: float) -> list[str]:
        """Those named more than a window ago that never said HELLO; forgotten here."""
        late = [c for c, t in self.first_named.items() if now - t > self.window]
        for client in late:
            del self.first_named[client]
        return late

    def next_deadline(self) -> float:
        return min(self.first_named.values(), default=math.inf) + self.window
