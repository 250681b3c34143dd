"""Submitters whose jobs here stop starting because one of them failed (SPEC section 3).

Without -k a failure means no new action of the actionset starts. The submitter cancels
the rest when it hears of the failure, but a slot freed by the failed job would take the
next queued one before that CANCEL could arrive; so a JOB that asks (`halt_on_failure`)
makes the worker hold back that submitter's queued jobs itself. When the process exits
non-zero they are paused; once its outcome is known (a failure, or an error the submitter
will retry: the disk was full, its outputs could not be collected) they are withdrawn,
answered `cancelled` after the failed job's own RESULT so the submitter learns of the
failure first, or go on as before."""

from __future__ import annotations

from protocol import Job
from worker.effects import Key

MAX_HALTED = 4096   # submitters remembered; the oldest is forgotten first


def is_failure(status: str, code: int) -> bool:
    """An outcome the submitter reports as the action's failure (not one it retries)."""
    return status in ("signalled", "timeout") or (status == "exited" and code != 0)


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
    def __init__(self, window: float) -> None:
        self.window = window                       # how long a JOB sent before it heard may take
        self.pausing: dict[Key, str] = {}          # job whose process failed -> its client
        self.halted: dict[str, float] = {}         # submitter -> when its failure was answered

    def exited_badly(self, key: Key) -> None:
        """`key`'s process ended non-zero: its client's jobs wait for its outcome."""
        self.pausing[key] = key[0]

    def take_next(self, queue, running=()) -> tuple | None:
        """The entry of the worker's queue to start now, taken out; None if none may (jobs
        wait only behind a failed one's outcome). Of the submitters with a job that may
        start, the one with the fewest running here goes first (its oldest job), so one
        that queued five hundred jobs does not hold off one with five."""
        paused = set(self.pausing.values())
        counts: dict[str, int] = {}
        for key in running:
            counts[key[0]] = counts.get(key[0], 0) + 1
        best = None
        for i, entry in enumerate(queue):
            if entry[1].halt_on_failure and entry[1].client in paused:
                continue
            n = counts.get(entry[0][0], 0)
            if best is None or n < best[0]:
                best = (n, i)
                if n == 0:
                    break
        if best is None:
            return None
        entry = queue[best[1]]
        del queue[best[1]]
        return entry

    def stopped(self, job: Job, now: float) -> bool:
        """Whether a newly arrived JOB was sent before its submitter heard of its failure."""
        since = self.halted.get(job.client)
        return job.halt_on_failure and since is not None and now - since < self.window

    def decided(self, key: Key, failed: bool, now: float) -> bool:
        """`key`'s outcome is known: True if its client's jobs are to be withdrawn (it
        failed), False if they go on (it succeeded after all, or is an error to retry)."""
        if self.pausing.pop(key, None) is None or not failed:
            return False
        self.halted[key[0]] = now
        while len(self.halted) > MAX_HALTED:
            del self.halted[next(iter(self.halted))]
        return True

    def forget(self, client: str) -> None:
        """The submitter is gone: nothing of it is kept."""
        self.halted.pop(client, None)
        for key in [k for k, c in self.pausing.items() if c == client]:
            del self.pausing[key]
