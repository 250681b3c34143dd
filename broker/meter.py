"""Counters of the broker's traffic for status and /metrics: messages by type and direction, bytes."""

from __future__ import annotations

from collections import Counter

from protocol.messages import MESSAGE_TYPES


# The core's counters docs/protocol.md lists: shown as 0 until counted, so readers of
# `rake-status --json` find every one (the core's Counter only holds those counted).
COUNTED = ("received", "jobs", "results", "results_dropped", "rejected", "wants", "chunks",
           "transfers_dropped", "unroutable", "dropped_full", "peer_errors", "forbidden",
           "unauthorized", "rate_limited", "bugs")


class Meter:
    """Plain counters the core bumps inline (a dict item per message, no objects made)."""

    def __init__(self) -> None:
        self.msgs_in = dict.fromkeys(MESSAGE_TYPES.values(), 0)
        self.msgs_out = dict.fromkeys(MESSAGE_TYPES.values(), 0)
        self.bytes_in = 0
        self.bytes_out = 0

    def counters(self, stats: Counter, extra: dict[str, int]) -> dict[str, int]:
        """Every counter under its documented name (docs/protocol.md, STATUS-REPLY)."""
        out = {f"in.{cls.TYPE}": n for cls, n in self.msgs_in.items() if n}
        out.update((f"out.{cls.TYPE}", n) for cls, n in self.msgs_out.items() if n)
        out.update(bytes_in=self.bytes_in, bytes_out=self.bytes_out)
        out.update(dict.fromkeys(COUNTED, 0))
        out.update((k, v) for k, v in stats.items() if v >= 0)
        out.update(extra)
        return out
