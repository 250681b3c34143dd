"""An actionset run's jobs that must run again: lost, given back or failed by their worker
(Retrying), how long a retry waits for a worker it has not tried, which go again for free,
and how the workers tried are named when an action is given up."""

from __future__ import annotations

from dataclasses import dataclass, field

from submitter.effects import Failed, Note, WorkerGone


@dataclass
class RetryWaits:
    """A retry first waits, up to `window` seconds, for a worker it has not tried: one that
    fails every job at once always has room, and would take every attempt. After that it
    is `relaxed` and takes any worker (tried ones last)."""
    window: float
    since: dict[int, float] = field(default_factory=dict)   # action -> waiting since
    relaxed: set[int] = field(default_factory=set)

    def waiting(self, index: int, now: float) -> None:
        self.since.setdefault(index, now)

    def placed(self, index: int) -> None:
        self.since.pop(index, None)
        self.relaxed.discard(index)

    def age(self, now: float, pending) -> None:
        """Relax the retries whose window has passed; forget those no longer pending (placed,
        halted), so no deadline of theirs stays behind to wake the loop for nothing."""
        if not self.since and not self.relaxed:
            return   # the usual case, on every scheduling pass: no work at all
        pending = set(pending)
        for index, since in list(self.since.items()):
            if index not in pending or now - since >= self.window:
                del self.since[index]
                if index in pending:
                    self.relaxed.add(index)
        self.relaxed &= pending

    def next_deadline(self) -> float | None:
        return min(self.since.values()) + self.window + 1e-3 if self.since else None


@dataclass
class FreeRequeues:
    """A job a draining worker gave back unstarted, or one cut off when its worker reconnected,
    is sent again without using an attempt, up to `most` times per action: a worker cannot keep
    one circling by saying it drains or by reconnecting."""
    most: int
    count: dict[int, int] = field(default_factory=dict)   # action -> free requeues so far

    def take(self, index: int) -> bool:
        if self.count.get(index, 0) >= self.most:
            return False
        self.count[index] = self.count.get(index, 0) + 1
        return True


def listed(names: list[str]) -> str:
    """The workers tried: "w1, w2, w3", a repeated one once with a count: "embedded (3 times)"."""
    return ", ".join(n if names.count(n) == 1 else f"{n} ({names.count(n)} times)" for n in dict.fromkeys(names))


class Retrying:
    """An actionset run's jobs that are lost, given back or failed by their worker: run again
    (an attempt, or free), or given up. Mixed into ActionSetRun (submitter/core.py), whose
    remote, pending, tried, view, free and options it uses."""

    def _lose_workers(self, workers: list[str]) -> list:
        out = [WorkerGone(w) for w in workers]
        for job, d in list(self.remote.items()):
            if d.worker not in workers:
                continue
            name = self.view_name(d.worker)
            # Listed again on a new connection (it reconnected after a stall of its broker):
            # no fault of the action nor a dead worker, so no attempt is used; else a real
            # loss beside two stalls fails a healthy run.
            if d.worker in self.view.rejoined and not self.halted and self.free.take(d.index):
                del self.remote[job]
                self.view.ended(d.worker, job)
                out += self._elsewhere(d, f"worker {name} reconnected; its old connection's jobs are sent again")
            else:
                out += self._lost(job, f"worker {name} was lost")
        return out

    def _lost(self, job: int, why: str) -> list:
        d = self.remote.pop(job)
        self.view.ended(d.worker, job)
        return self._retry(d, why)

    def _handed_back(self, d, result) -> bool:
        """Given back unstarted by a worker that is leaving (its load says draining)."""
        return result.load is not None and result.load.draining and self.free.take(d.index)

    def _elsewhere(self, d, why: str) -> list:
        if self.halted:
            return [Failed(d.index, f"{why} (not run: an earlier action failed)")]
        self.pending.insert(0, d.index)
        return [Note(f"line {self.actions[d.index].line} is sent again, no attempt used ({why})")]

    def _retry(self, d, why: str) -> list:
        ids = self.tried.setdefault(d.index, [])
        ids.append(d.worker)
        if self.halted:   # not run again, but said: it would end as "unfinished", unexplained
            return [Failed(d.index, f"{why} (not run again: an earlier action failed)")]
        if len(ids) < self.options.max_attempts:
            self.pending.insert(0, d.index)
            return [Note(f"retrying line {self.actions[d.index].line} ({why})")]   # elsewhere if it can
        tried = listed([self.view_name(w) for w in ids])
        return self._mark_failed() + [
            Failed(d.index, f"gave up after {len(ids)} attempts on {tried}: {why}")]
