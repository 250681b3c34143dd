"""How far ahead an actionset queues jobs on workers: the cost a worker must stay below."""

from __future__ import annotations

import math

from protocol.messages import Result
from submitter.options import RunOptions

WEIGHT = 0.3   # of the newest result in the moving average of how long actions run


class QueueDepth:
    """Slots are only filled (`first_depth`) until every known worker has sent a result:
    jobs queued ahead on the first to answer would leave one joining a moment later idle.
    Then short actions queue ahead (`depth`), so a slot never waits for the submitter; long
    ones do not: a slot waiting a round trip for its next action costs little, while one
    queued behind a busy worker can wait a whole action as another worker frees a slot."""

    def __init__(self, options: RunOptions):
        self.options = options
        self.answered: set[str] = set()   # workers a result came from
        self.typical: float | None = None   # seconds, the moving average of actions' run times

    def heard(self, worker: str, result: Result) -> None:
        self.answered.add(worker)
        took = result.elapsed   # the worker's word: a wrong one costs only queueing ahead
        if result.status in ("error", "cancelled") or not (math.isfinite(took) and 0.0 <= took < 1e9):
            return   # one that did not run says nothing about how long actions run
        self.typical = took if self.typical is None else (1 - WEIGHT) * self.typical + WEIGHT * took

    def depth(self, workers) -> float:
        """The depth for now, `workers` being those in the table."""
        if not self.answered.issuperset(workers):
            return self.options.first_depth
        if self.typical is not None and self.typical >= self.options.ahead_under:
            return min(self.options.depth, 1.0)
        return self.options.depth
