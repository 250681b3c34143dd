"""Timing constants shared by all three programs; every one is configurable for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass


# Deadlines sit this far past the edge they wait for, since "silent for more than the
# liveness window" is a strict comparison: a wake-up exactly at the edge would change nothing.
TICK = 1e-3

RECONNECT_MAX = 32.0   # seconds: the longest a DEALER (libzmq) waits between tries to reconnect


@dataclass(frozen=True)
class Timing:
    heartbeat: float = 1.0        # seconds between heartbeats, in every direction
    liveness: int = 3             # a peer silent for this many intervals is gone
    push_delay: float = 0.02      # the broker coalesces table changes this long before pushing
    backoff_min: float = 1.0      # reconnect backoff doubles from here ...
    backoff_max: float = 32.0     # ... up to here

    @property
    def expiry(self) -> float:
        return self.heartbeat * self.liveness

    @classmethod
    def from_env(cls, heartbeat: float | None = None) -> "Timing":
        """RAKE_HEARTBEAT (seconds) and RAKE_LIVENESS override the defaults; flags win over both.
        A bad value is a ValueError naming where it came from and the range."""
        if heartbeat is not None:
            hb, where = heartbeat, "--heartbeat"
        else:
            hb, where = _env_number("RAKE_HEARTBEAT", cls.heartbeat, float), "RAKE_HEARTBEAT"
        if not 0.001 <= hb <= 3600:   # also false for nan
            raise ValueError(f"{where} must be 0.001 to 3600 seconds, got {hb:g}")
        liveness = _env_number("RAKE_LIVENESS", cls.liveness, int)
        if not 1 <= liveness <= 100:
            raise ValueError(f"RAKE_LIVENESS must be a whole number from 1 to 100, got {liveness}")
        # Reconnect backoff is 1 to 32 heartbeats: 1 s to 32 s at the default interval.
        return cls(heartbeat=hb, liveness=liveness, backoff_min=hb, backoff_max=32 * hb)


def other_interval(mine: float, theirs: float) -> str | None:
    """Why a peer beating every `theirs` seconds cannot work with us, beating every `mine`
    (each side would declare the other gone, or keep greeting it); None if it can, or did
    not say (0)."""
    if not theirs or abs(theirs - mine) <= 0.01 * mine:
        return None
    return (f"the broker's heartbeat is {mine:g} s and yours {theirs:g} s: give every rake "
            "program the same --heartbeat (or RAKE_HEARTBEAT)")


def _env_number(name: str, default, kind: type):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.strip())
        if kind is int and not value.is_integer():   # 3.0 is 3; 1.5, inf and nan are not
            raise ValueError(raw)
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
