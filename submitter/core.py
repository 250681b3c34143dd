"""Running one actionset: which action starts where, retries, failure and halting; no I/O."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from protocol.messages import Error, Result, Workers
from protocol.paths import printable as clean, quote_text
from submitter.effects import (  # noqa: F401 (re-exported: the session and tests take them from here)
    Deliver, Failed, Note, RunLocal, SendCancel, SendJob, Withdrawn,
)
from submitter.rakefile import Action, ActionSet
from submitter.options import RunOptions
from submitter.bounces import Bounces
from submitter.depth import QueueDepth
from submitter.retries import FreeRequeues, Retrying, RetryWaits
from submitter.view import WorkerView

EXIT_OK, EXIT_FAILED, EXIT_NO_WORKER, EXIT_INTERRUPTED = 0, 1, 69, 130




@dataclass
class Dispatch:
    index: int
    worker: str
    attempt: int
    cancelling: bool = False


@dataclass
class ActionSetRun(Retrying):
    """Feed it worker tables, results and the time; it says what to start, send and report."""
    actionset: ActionSet
    view: WorkerView | None
    job_ids: itertools.count
    options: RunOptions
    now: float
    pending: list[int] = field(default_factory=list)
    local_running: set[int] = field(default_factory=set)
    remote: dict[int, Dispatch] = field(default_factory=dict)   # job id -> where it went
    tried: dict[int, list[str]] = field(default_factory=dict)   # action index -> worker ids
    status: int = EXIT_OK
    halted: bool = False
    no_worker_since: float | None = None
    gave_up_waiting: bool = False   # ended for want of any worker (main then names the broker)
    dropped: int = 0          # results for jobs no longer outstanding
    bounces: Bounces = field(default_factory=Bounces)
    delivering: set[int] = field(default_factory=set)   # ok, but its outputs not yet in place

    def __post_init__(self) -> None:
        self.waits = RetryWaits(self.options.window)
        self.free = FreeRequeues(self.options.max_attempts)
        self.queue_depth = QueueDepth(self.options)
        self.pending = list(range(len(self.actionset.actions)))
        self.local_waiting = sum(1 for a in self.actionset.actions if not a.remote)

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.actionset.actions

    @property
    def finished(self) -> bool:
        return not self.pending and not self.local_running and not self.remote

    # ---- events --------------------------------------------------------------------------
    def start(self, now: float) -> list:
        return self._schedule(now)

    def on_workers(self, now: float, msg: Workers) -> list:
        gone, confirmed = self.view.apply(msg, now)
        return self._lose_workers(gone) + self._resend_to(confirmed) + self._schedule(now)

    def on_broker_reset(self, now: float) -> list:
        """We said HELLO again (new broker, or it forgot us): wait for workers to reappear."""
        self.view.suspect_all()
        return []

    def _resend_to(self, workers: list[str]) -> list:
        """A worker is back after a broker restart: my jobs go there again, same ids. It ignores
        those it holds, answers again for those it finished, runs the rest: none runs twice."""
        back = [(job, d) for job, d in self.remote.items() if d.worker in workers]
        self.bounces.resent.update(job for job, _ in back)
        # One being cancelled is asked for, not sent: it must not start now.
        self.bounces.ask_for([job for job, d in back if d.cancelling])
        return [SendJob(d.index, d.worker, job, d.attempt) for job, d in back if not d.cancelling]

    def on_result(self, now: float, result: Result, blobs: list) -> list:
        d = self.remote.get(result.job)
        # `worker` is the real sender, stamped by the broker: only the worker the job went to
        # may end it (anyone can send a RESULT, and the job ids are no secret).
        if d is None or result.worker != d.worker:
            self.dropped += 1   # a late answer from an attempt given up on, a resent one, a forgery
            return []
        del self.remote[result.job]
        self.view.ended(d.worker, result.job)
        if result.load is not None:
            self.view.apply_load(d.worker, result.load)
        unfetchable = result.unfetchable()
        if unfetchable is not None:   # as a worker answers such a JOB input: its fault, tried elsewhere
            result = Result(job=result.job, client=result.client, status="error", worker=result.worker,
                            error=f"output {quote_text(unfetchable)} has neither its bytes nor a digest")
        self.view.note_result(d.worker, result.status == "error", now)
        self.queue_depth.heard(d.worker, result)
        if result.status == "cancelled" and not d.cancelling and self._handed_back(d, result):
            return self._elsewhere(d, f"{self.view_name(d.worker)}: {clean(result.error)}") + self._schedule(now)
        if result.status == "error" or (result.status == "cancelled" and not d.cancelling):
            why = f"{self.view_name(d.worker)}: {clean(result.error) or 'cancelled'}"
            return self._retry(d, why) + self._schedule(now)
        if result.status == "cancelled":   # taken back before it ran: not run after all
            return [Withdrawn(d.index)] + self._schedule(now)
        out = [Deliver(d.index, result, blobs, self.view_name(d.worker))]
        if not (result.status == "exited" and result.code == 0):
            out += self._mark_failed()
        elif result.outputs:   # they may yet be refused (a failure): under -j its slot is
            self.delivering.add(d.index)   # held until they are in place (delivered(), fail())
            return out
        return out + self._schedule(now)

    def on_error(self, now: float, err: Error) -> list:
        if err.code == "bad-timing":   # a broker (restarted?) beating at another interval
            return [Note(clean(err.message), error=True)] + self.interrupt(now, EXIT_NO_WORKER)
        d = self.remote.get(err.job) if err.job is not None else None
        if d is None:   # about a job no longer ours (retried, given up on): stale, not news
            return [] if err.job is not None else [Note(f"broker: {err.code}: {clean(err.message)}")]
        if err.code == "worker-busy":   # dropped, not queued: the same JOB again shortly (a
            self.bounces.bounced(err.job, now)  # resend the worker holds is ignored there)
            return self.bounces.drop_cancelled(self.remote, self.view)
        if err.code == "unknown-worker":
            # The broker does not know it (now): it may have left, or not yet re-registered
            # with a restarted broker. Wait a liveness window before giving up on it.
            self.view.suspect(d.worker, now)
            return self._schedule(now)
        return self._lost(err.job, f"broker refused the job: {clean(err.message)}") + self._schedule(now)

    def on_local_done(self, now: float, index: int, ok: bool) -> list:
        self.local_running.discard(index)
        out = [] if ok else self._mark_failed()
        return out + self._schedule(now)

    def delivered(self, now: float, index: int) -> list:
        """Its outputs are in place: its slot is free."""
        self.delivering.discard(index)
        return self._schedule(now)

    def redo(self, now: float, index: int, worker: str, why: str = "") -> list:
        """The action ran, but its outputs died with (or could not be fetched from) `worker`."""
        self.delivering.discard(index)
        d = Dispatch(index, worker, len(self.tried.get(index, ())) + 1)
        why = why or f"its outputs were lost with worker {self.view_name(worker)}"
        if self.halted:   # it will not run again: say what became of it
            return self._mark_failed() + [Failed(index, f"output lost: {why}")]
        return self._retry(d, why) + self._schedule(now)

    def unsendable(self, now: float, job: int) -> list:
        """A job could not be put into a message at all: the action fails, the run goes on."""
        d = self.remote.pop(job, None)
        if d is not None:
            self.view.ended(d.worker, job)
        return self._mark_failed() + self._schedule(now)

    def fail(self, now: float, index: int) -> list:   # its results could not be taken (an output refused)
        self.delivering.discard(index)
        return self._mark_failed() + self._schedule(now)

    def interrupt(self, now: float, status: int = EXIT_INTERRUPTED) -> list:
        """Stop everything: kill remote actions, start nothing more."""
        self.status, self.halted = status, True
        self.pending.clear()
        self.local_waiting = 0
        out = [SendCancel(d.worker, job, kill=True) for job, d in self.remote.items()]
        self.remote.clear()
        return out

    def on_tick(self, now: float) -> list:
        lost = self.view.expire(now, self.options.window) if self.view else []
        out = self._lose_workers(lost)   # first: a job of one of them is not resent there
        out += self.bounces.drop_cancelled(self.remote, self.view)
        out += self.bounces.due(now, self.remote, self.options.window)
        return out + self._schedule(now)

    def next_deadline(self) -> float | None:
        deadlines = []
        if self.no_worker_since is not None:
            deadlines.append(self.no_worker_since + self.options.worker_wait)
        if self.view is not None and self.view.next_expiry(self.options.window) is not None:
            deadlines.append(self.view.next_expiry(self.options.window) + 1e-3)
        if self.waits.next_deadline() is not None:   # then a tried worker will do
            deadlines.append(self.waits.next_deadline())
        return min(deadlines + list(self.bounces.busy.values()), default=None)

    # ---- decisions -----------------------------------------------------------------------
    def _schedule(self, now: float) -> list:
        self.waits.age(now, self.pending)
        if self.halted:
            return []
        out: list = []
        blocked = False     # no worker has room: placement does not depend on the action
        nothing_for: set[frozenset] = set()   # workers tried by retries that found no room
        for index in list(self.pending):
            if self.options.jobs and len(self.local_running) + len(self.remote) + len(self.delivering) >= self.options.jobs:
                break
            if not self.actions[index].remote:
                self.pending.remove(index)
                self.local_waiting -= 1
                self.local_running.add(index)
                out.append(RunLocal(index))
                continue
            if blocked:
                if not self.local_waiting:
                    break   # only remote actions left, and none can go: stop scanning
                continue
            avoid = (frozenset(self.tried.get(index, ())), index in self.waits.relaxed)
            sent = self._place(index, *avoid, now) if avoid not in nothing_for else None
            if sent:
                out.append(sent)
            elif avoid[0]:   # a retry may wait for an untried worker while others fit
                nothing_for.add(avoid)
            else:
                blocked = True
        return out + self._watch_for_workers(now)

    def _place(self, index: int, avoid: frozenset, relaxed: bool, now: float) -> SendJob | None:
        """A retry waits up to a liveness window for a worker it has not tried (one that
        fails every job at once always has room), then takes a tried one as well."""
        worker = (self.view.pick_worker(self.queue_depth.depth(self.view.rows), avoid, not relaxed, now,
                                        share=not avoid) if self.view else None)
        if worker is None:
            if avoid and not relaxed and self.view is not None and self.view.rows:
                self.waits.waiting(index, now)   # workers, but no untried one free
            return None
        self.waits.placed(index)
        self.pending.remove(index)
        job = next(self.job_ids)
        attempt = len(self.tried.setdefault(index, [])) + 1
        self.remote[job] = Dispatch(index, worker, attempt)
        self.view.sent(worker, job)
        return SendJob(index, worker, job, attempt)

    def _watch_for_workers(self, now: float) -> list:
        waiting = any(self.actions[i].remote for i in self.pending)
        if not waiting or (self.view and (self.view.rows or self.view.unconfirmed)):
            self.no_worker_since = None
            return []
        if self.no_worker_since is None:
            self.no_worker_since = now
            return []
        if now - self.no_worker_since < self.options.worker_wait:
            return []
        self.status, self.halted, self.gave_up_waiting = EXIT_NO_WORKER, True, True
        out = [Failed(i, f"no worker available after {self.options.worker_wait:g}s")
               for i in self.pending if self.actions[i].remote]
        self.pending.clear()
        return out

    def _mark_failed(self) -> list:
        if self.status == EXIT_OK:
            self.status = EXIT_FAILED
        if self.options.keep_going or self.halted:
            return []
        self.halted = True
        # One waiting to be tried again (its worker was lost) started once: said, not dropped.
        out = [Failed(i, "not tried again: an earlier action failed") for i in self.pending if i in self.tried]
        self.pending.clear()
        # Queued jobs are withdrawn; ones already running are left to finish (as make does).
        for job, d in self.remote.items():
            d.cancelling = True
            out.append(SendCancel(d.worker, job, kill=False))
        return out

    def view_name(self, worker: str) -> str:
        return self.view.name(worker) if self.view else clean(worker[:12])
