"""Submitters whose jobs here stop starting because one of them failed (SPEC section 3).

Without -k a failure means no new action of the actionset starts. The submitter cancels
the rest when it hears of the failure, but a slot freed by the failed job would take the
next queued one before that CANCEL could arrive; so a JOB that asks (`halt_on_failure`)
makes the worker hold back that submitter's queued jobs itself. They are answered
`cancelled` only after the failed job's own RESULT, so the submitter always learns of the
failure first (and does not run them elsewhere)."""

from __future__ import annotations

from protocol import Job
from worker.effects import Key

MAX_HALTED = 4096   # submitters remembered; the oldest is forgotten first


def take_held(client: str, queue, gate) -> list[Job]:
    """Take the client's jobs that halt on a failure out of the worker's queue (a deque of
    (key, job, files)) and its input gate (waiting for blobs), in arrival order."""
    halts = lambda key, job: key[0] == client and job.halt_on_failure  # noqa: E731
    held = [job for key, job, _ in queue if halts(key, job)]
    stays = [entry for entry in queue if not halts(entry[0], entry[1])]
    queue.clear()
    queue.extend(stays)
    waiting = [key for key, entry in gate.waiting.items() if halts(key, entry[0])]
    return held + [gate.drop(key) for key in waiting]


class Halts:
    def __init__(self) -> None:
        self.waiting: dict[Key, list[Job]] = {}   # failed job -> the jobs held back until its RESULT
        self.halted: dict[str, None] = {}         # submitters whose failure has been answered

    def failed(self, key: Key, held: list[Job]) -> None:
        """The job `key` failed (its process ended badly); `held` were queued behind it."""
        self.waiting.setdefault(key, []).extend(held)

    def hold(self, job: Job) -> bool:
        """Whether a newly arrived JOB waits for a failed job's RESULT (then it is kept)."""
        for key, held in self.waiting.items():
            if key[0] == job.client and job.halt_on_failure:
                held.append(job)
                return True
        return False

    def stopped(self, job: Job) -> bool:
        """Whether a newly arrived JOB comes after its submitter's failure was answered."""
        return job.halt_on_failure and job.client in self.halted

    def answered(self, key: Key) -> list[Job]:
        """The failed job's RESULT is out: the jobs held behind it, to answer `cancelled`."""
        held = self.waiting.pop(key, None)
        if held is None:
            return []
        self.halted[key[0]] = None
        while len(self.halted) > MAX_HALTED:
            del self.halted[next(iter(self.halted))]
        return held

    def forget(self, client: str) -> None:
        """The submitter is gone: nothing of it is kept."""
        self.halted.pop(client, None)
        for key in [k for k in self.waiting if k[0] == client]:
            del self.waiting[key]
