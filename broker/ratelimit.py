"""Per-peer token buckets: each peer may send `rate` messages a second, in bursts of `burst`."""

from __future__ import annotations


class RateLimiter:
    """Pure (the caller passes `now`). A bucket that has refilled is forgotten, so memory is
    bounded by the peers heard from in the last `burst / rate` seconds."""

    def __init__(self, rate: float, burst: float):
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate limit must be positive with a burst of at least 1, got {rate}/{burst}")
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}   # key -> (tokens, at)
        self.next_prune = 0.0

    def allow(self, key: str, now: float) -> bool:
        """Take one token from `key`'s bucket; False when it is empty (the message is excess)."""
        tokens, at = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        if now >= self.next_prune:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate
        self.buckets = {k: v for k, v in self.buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst}
        self.next_prune = now + refill
