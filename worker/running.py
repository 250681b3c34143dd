"""A job in flight as the worker's loop sees it, and how the way it ended becomes its Outcome."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass

from worker.execute import Outcome


@dataclass
class Running:
    key: object
    jobdir: str
    snapshot: dict
    out: object
    err: object
    started: float
    deadline: float | None
    pid: int = 0              # ours (no namespace) or the spawner's request id
    pidfd: int = -1
    proc: subprocess.Popen | None = None
    killed: bool = False
    timed_out: bool = False
    over_time: str = ""       # why, if the deadline is the worker's --max-time
    over: str = ""            # why the worker killed it at one of its limits
    next_check: float = float("inf")
    ended: float | None = None   # when its process was seen to end
    inputs: dict | None = None   # path -> (mode, digest) of its inputs as staged
    # When its action started, after its inputs were staged (`started` is before): a disk full
    # only while they were being staged, whole, took nothing from the action.
    spawned: float = float("inf")


def end_outcome(job: Running, status: int | None, error: str | None, left: int) -> Outcome:
    """`status` is the raw wait status (None: it never ran, `error` says why); `left`, how many
    processes it left running that were killed."""
    if status is None:
        return Outcome("error", error=f"worker could not run the job: cannot run the action: {error}")
    rc = os.waitstatus_to_exitcode(status)
    if job.timed_out:
        return Outcome("timeout", code=signal.SIGKILL, error=job.over_time)
    if job.over:
        return Outcome("signalled", code=signal.SIGKILL, error=job.over)
    if job.killed:
        return Outcome("cancelled")
    outcome = Outcome("signalled", code=-rc) if rc < 0 else Outcome("exited", code=rc)
    if left:   # it must not outlive its shell, so what it left was killed; its own status stands
        outcome.error = f"killed: it left processes running when it ended ({left} killed)"
    return outcome
