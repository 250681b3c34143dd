"""How long the broker has been silent, as the worker sees it: when to reconnect (with
backoff) and when a silence was long enough that the broker dropped us (rejoining)."""

from __future__ import annotations

from protocol.timing import TICK, Timing


class BrokerSilence:
    """The clock of the worker's link: its own times, no messages (WorkerCore acts on them)."""

    def __init__(self, timing: Timing, now: float):
        self.timing = timing
        self.last_heard, self.heard_once = now, False   # last_heard is reset to pace reconnects
        self.answered = now       # the broker's last message
        self.backoff = timing.backoff_min
        self.rejoining = False    # after a silence, until the broker welcomes us
        self.heard_back: float | None = None   # the first message read while rejoining

    def heard(self, now: float) -> None:
        self.last_heard, self.answered, self.heard_once = now, now, True
        if self.rejoining and self.heard_back is None:
            self.heard_back = now
        self.backoff = self.timing.backoff_min

    def excuse(self, now: float) -> None:
        """The broker shares our stopped loop (embedded): it did not go quiet."""
        self.last_heard = self.answered = max(self.last_heard, now)

    def reconnect_due(self, now: float) -> str:
        """Why to reconnect now ("" if not yet); the next try waits twice as long, up to the cap."""
        if now - self.last_heard <= self.timing.expiry + self.backoff:
            return ""
        why = (f"broker silent for {now - self.last_heard:.1f}s; reconnecting" if self.heard_once
               else f"no answer from the broker for {now - self.last_heard:.1f}s (not running yet?); still trying")
        self.last_heard = now
        self.backoff = min(self.backoff * 2, self.timing.backoff_max)
        return why

    def next_deadline(self) -> float:
        return self.last_heard + self.timing.expiry + self.backoff + TICK

    def welcomed(self) -> bool:
        """The broker's welcome came: True if it ends a rejoining."""
        was, self.rejoining, self.heard_back = self.rejoining, False, None
        return was

    def rejoin_waited(self, now: float) -> bool:
        """No welcome within a window of hearing back: the wait ends (True once)."""
        if self.heard_back is not None and now - self.heard_back > self.timing.expiry:
            self.rejoining, self.heard_back = False, None
            return True
        return False

    def cut_off(self, now: float) -> bool:
        """A silence the broker drops a worker for has just begun (True once, then rejoining)."""
        if self.rejoining or now - self.answered <= self.timing.expiry:
            return False
        self.rejoining = True
        return True
