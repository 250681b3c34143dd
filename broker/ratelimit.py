"""Per-peer token buckets: each peer may send `rate` messages a second, in bursts of `burst`
(a message with a big header counts as several: header_cost)."""

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

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens (1 a message) from `key`'s bucket; False when it has fewer (the
        message is excess). One that costs more than a full bucket still goes when it is full."""
        tokens, at = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < min(cost, self.burst):
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - cost, now)
        if now >= self.next_prune:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate
        self.buckets = {k: v for k, v in self.buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst}
        self.next_prune = now + refill


# A header is decoded before anything else is known of it, and a legal one of 16 MiB takes
# the broker 0.25 s: counted one token per message, one peer sending them at its rate kept the
# broker decoding all the time and holding gigabytes queued behind them. Each 4 KiB of header
# costs a token more (a usual message is under 1 KiB; blob frames are never decoded and cost
# nothing), so such a peer gets about one a second at the default rate.
HEADER_BYTES_PER_TOKEN = 4096


def header_cost(frames: list) -> int:
    """Tokens for a message of `frames` (version, header, blobs...): 1 under 4 KiB of header."""
    return 1 + (len(memoryview(frames[1])) // HEADER_BYTES_PER_TOKEN if len(frames) > 1 else 0)
