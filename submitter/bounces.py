"""JOBs the broker bounced (`worker-busy`): sent again shortly, or, being cancelled, asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

from submitter.effects import SendCancel, SendJob, Withdrawn

BUSY_RETRY = 0.2   # seconds before a JOB dropped at a worker's full queue is sent again


@dataclass
class Bounces:
    busy: dict[int, float] = field(default_factory=dict)   # job id -> when to send it (or ask) again
    resent: set[int] = field(default_factory=set)           # jobs sent again: their worker may hold them

    def bounced(self, job: int, now: float) -> None:
        self.busy[job] = now + BUSY_RETRY

    def ask_for(self, jobs: list[int]) -> None:
        """Jobs being cancelled that their worker may or may not hold: asked for at once."""
        self.resent.update(jobs)
        for job in jobs:
            self.busy[job] = 0.0

    def drop_cancelled(self, remote: dict, view) -> list:
        """Bounced JOBs being cancelled are not run: withdrawn. But a resent one's worker may
        hold and run it (the broker cannot tell): due() asks with a CANCEL alone, which a
        worker answers, also for a job it never had, and that answer is awaited."""
        out = []
        for job in [j for j in self.busy if j in remote and remote[j].cancelling and j not in self.resent]:
            del self.busy[job]
            d = remote.pop(job)
            view.ended(d.worker, job)
            out.append(Withdrawn(d.index))
        return out

    def due(self, now: float, remote: dict, window: float) -> list:
        out = []
        for job in [job for job, when in self.busy.items() if when <= now]:
            d = remote.get(job)
            if d is not None and d.cancelling:   # asked again each window until answered: a
                out.append(SendCancel(d.worker, job, kill=False))   # CANCEL may be lost too
                self.busy[job] = now + window
                continue
            if d is not None:
                out.append(SendJob(d.index, d.worker, job, d.attempt))
            del self.busy[job]
            self.resent.add(job)
        return out
