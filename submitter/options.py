"""How one run of a Rakefile goes: the command line's choices and the timing they imply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    jobs: int | None = None          # -j: actions running at once from this submitter
    keep_going: bool = False         # -k
    max_attempts: int = 3            # a worker lost mid-action costs one attempt
    depth: float = 2.0               # dispatch while a worker's cost is below this
    first_depth: float = 1.0         # ... and this until each worker has answered (submitter/depth.py)
    ahead_under: float = 0.5         # seconds: queue ahead (depth above 1) only while actions take less
    worker_wait: float = 10.0        # how long an empty worker table is tolerated
    timeout: float | None = None     # per remote action, enforced by the worker
    window: float = 3.0              # liveness window: how long an unconfirmed worker may stay
    broker_wait: float = 60.0        # how long a silent broker is waited for before giving up
