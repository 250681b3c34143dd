"""The submitter's view of the worker table, corrected by its own jobs in flight; picks workers."""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field, replace

from protocol.messages import Load, WorkerInfo, Workers
from protocol.paths import printable as clean

MAX_TABLE = 65536   # rows kept of a full table sent in pieces: a broker cannot make us hoard
FAILING_FOR = 30.0   # seconds a worker that fails every job is passed over


@dataclass
class WorkerView:
    """Rows as the broker pushed them (or as results reported), plus my jobs on each worker.

    A worker missing from a full table (a restarted broker that has not heard from it yet)
    or named in an unknown-worker error is *unconfirmed*, not gone: it gets no new jobs, and
    only if it stays missing for a liveness window are its jobs given up on.
    """
    me: str
    rows: dict[str, WorkerInfo] = field(default_factory=dict)
    mine: dict[str, set[int]] = field(default_factory=dict)   # worker id -> my job ids there
    names: dict[str, str] = field(default_factory=dict)       # kept after a worker is gone
    unconfirmed: dict[str, float] = field(default_factory=dict)  # worker id -> missing since
    partial: list = field(default_factory=list)   # rows of a full table whose last piece is to come
    placement: str = "cost"   # or "round-robin" / "random": load-blind baselines for bench/
    turns: int = 0
    rng: random.Random = field(default_factory=random.Random)
    errors: dict[str, tuple[int, float]] = field(default_factory=dict)   # worker -> (errors in a row, last)
    rejoined: set[str] = field(default_factory=set)   # ids gone whose worker is listed on a new connection

    def apply(self, msg: Workers, now: float = 0.0) -> tuple[list[str], list[str]]:
        """Take a pushed table or delta: (ids gone for good, ids confirmed again)."""
        if msg.full and (msg.more or self.partial):   # a table in pieces counts once whole
            self.partial = [*self.partial, *msg.workers][:MAX_TABLE]
            if msg.more:
                return [], []
            msg, self.partial = replace(msg, workers=tuple(self.partial)), []
        gone = sorted(set(msg.gone))
        # Said before the broker's silence and held up by it (a cut link delivers what was
        # queued when it comes back): the broker dropped everyone it could not hear, workers
        # that may be back at once. Until its new table, a worker stays unconfirmed.
        gone = [wid for wid in gone if self.unconfirmed.get(wid) != math.inf]
        for wid in gone:
            old = self.rows.pop(wid, None)
            if old is not None and any((r.name, r.host) == (old.name, old.host)
                                       for r in (*self.rows.values(), *msg.workers) if r.id != wid):
                self.rejoined.add(wid)   # the broker says so too: "its previous connection closed"
            self.unconfirmed.pop(wid, None)
        if msg.full:
            listed = {w.id for w in msg.workers}
            for wid in [w for w in self.rows if w not in listed]:
                self.suspect(wid, now)
            # The new broker has answered: from now on, absent workers have a window to rejoin.
            for wid, since in self.unconfirmed.items():
                self.unconfirmed[wid] = min(since, now)
        confirmed = []
        for info in msg.workers:
            old = self.rows.get(info.id)
            if info.id in self.unconfirmed:
                del self.unconfirmed[info.id]
                confirmed.append(info.id)
            if old is None or info.seq >= old.seq:
                self.rows[info.id] = info
                self.names[info.id] = info.name
        return gone, confirmed

    def suspect(self, worker: str, now: float) -> None:
        if self.rows.pop(worker, None) is not None or worker in self.mine:
            self.unconfirmed.setdefault(worker, now)

    def suspect_all(self) -> None:
        """The broker restarted: nobody is confirmed until the new broker lists them, and
        nobody's window starts before the new broker has sent its first table."""
        self.partial = []   # pieces of the old broker's table: the new one sends its own
        for wid in {*self.rows, *self.mine}:
            self.suspect(wid, math.inf)

    def expire(self, now: float, window: float) -> list[str]:
        """Unconfirmed workers missing for longer than `window`: now gone for good."""
        lost = [w for w, since in self.unconfirmed.items() if now - since > window]
        for wid in lost:
            del self.unconfirmed[wid]
        return sorted(lost)

    def next_expiry(self, window: float) -> float | None:
        deadline = min((s + window for s in self.unconfirmed.values()), default=math.inf)
        return None if deadline == math.inf else deadline

    def apply_load(self, worker: str, load: Load) -> None:
        """A result carries the worker's load right after it ended: fresher than the table."""
        old = self.rows.get(worker)
        if old is not None and load.seq > old.seq:
            self.rows[worker] = replace(
                old, slots=load.slots, queue=load.queue, running=load.running, seq=load.seq,
                seen=load.seen_from(self.me), draining=load.draining, full=load.full)

    def sent(self, worker: str, job: int) -> None:
        self.mine.setdefault(worker, set()).add(job)

    def ended(self, worker: str, job: int) -> None:
        jobs = self.mine.get(worker)
        if jobs is not None:
            jobs.discard(job)
            if not jobs:
                del self.mine[worker]

    def cost(self, worker: str) -> float:
        """(queued + running + mine not yet in a report) / slots."""
        row = self.rows[worker]
        unseen = sum(1 for j in self.mine.get(worker, ()) if j > row.seen)
        return (row.queue + unseen) / row.slots

    def note_result(self, worker: str, error: bool, now: float) -> None:
        """Count a worker's `error` results in a row (a full disk fails every job at once)."""
        if not error:
            self.errors.pop(worker, None)
        elif worker in self.rows:
            self.errors[worker] = (self.errors.get(worker, (0, 0.0))[0] + 1, now)

    def failing(self, worker: str, now: float) -> bool:
        """Two errors in a row, the last within FAILING_FOR: given nothing while others live
        (then one job again, to see whether it mended)."""
        count, last = self.errors.get(worker, (0, 0.0))
        # After FAILING_FOR it is on probation: one job of mine at a time until one succeeds
        # (a pass of the scheduler would otherwise fill every free slot of it at once).
        return count >= 2 and (now - last < FAILING_FOR or bool(self.mine.get(worker)))

    def failed_me(self, worker: str, avoid: frozenset[str]) -> bool:
        """A worker failing every job that already failed this action: not given it again."""
        return worker in avoid and self.errors.get(worker, (0, 0.0))[0] >= 2

    def pick_worker(self, below: float, avoid: frozenset[str] = frozenset(), strict: bool = True,
                    now: float = 0.0, share: bool = False) -> str | None:
        """Least-cost worker whose cost is under `below`; ties go by this submitter's own order
        of the workers (a hash of its id and theirs), so that submitters started together,
        each seeing every worker idle, spread out instead of all picking the same one.

        A failing worker, or one whose disk is full, is left out while another is live. Workers in `avoid` (already
        tried for this action) are ranked last; `strict`: used only when every live worker
        has been tried, so a retry waits for room on another rather than go back to one that
        fails at once (a full disk answers every job in an instant, so it always has room).
        """
        if self.placement != "cost":
            return self._pick_blind()
        live = [w for w, row in self.rows.items() if not row.draining]
        live = [w for w in live if not (self.failing(w, now) or self.rows[w].full or self.failed_me(w, avoid))] or live
        fresh = [w for w in live if w not in avoid] if strict else []
        # `share`: one job of mine may wait on a worker that others' jobs fill; it starts
        # before their queued ones there (worker/halts.py), so a busy cluster does not
        # starve a small run.
        fits = [w for w in fresh or live
                if self.cost(w) < below or (share and not self.mine.get(w))]
        return min(fits, key=lambda w: (w in avoid, self.cost(w), self.rank(w), w), default=None)

    def rank(self, worker: str) -> int:
        """This submitter's place for `worker` among equals: fixed for a run, another in each."""
        return zlib.crc32(f"{self.me}/{worker}".encode("utf-8", "surrogateescape"))

    def _pick_blind(self) -> str | None:
        """The baselines a load-blind scheduler would use: every action placed at once."""
        live = sorted((r.name, w) for w, r in self.rows.items() if not r.draining)
        if not live:
            return None
        self.turns += 1
        if self.placement == "round-robin":
            return live[(self.turns - 1) % len(live)][1]
        return live[self.rng.randrange(len(live))][1]

    def name(self, worker: str) -> str:
        """The worker's name for a message line: a peer's text, so escape codes made visible."""
        return clean(self.names.get(worker, worker[:12]))
