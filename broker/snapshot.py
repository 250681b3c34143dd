"""Build a STATUS-REPLY from the broker core's state at one instant: a frozen, self-contained snapshot."""

from __future__ import annotations

from collections import Counter
from typing import Any

from broker.roles import key_of
from protocol.messages import StatusReply
from protocol.status import (
    EXCERPT, LABEL, MAX_STATUS_FLIGHT, MAX_STATUS_SUBMITTERS, MAX_STATUS_WORKERS, FlightInfo, ResultInfo,
    SubmitterState, WorkerState, cut,
)
from protocol.version import VERSION

LATE = 1.5   # heartbeat intervals without a message before a worker shows as "late"


def build_status(core: Any, now: float, key: str | None = None) -> StatusReply:
    """Everything a status shows, cut to the row caps; `core` is a broker.core.BrokerCore.
    `key` (with CURVE, the asker's role:fingerprint): only its own submitters and their jobs
    are shown, as a submitter may not see another's commands (docs/security.md)."""
    table = core.table
    rows = sorted(table.workers.values(), key=lambda r: (r.name, r.id))
    per_client: Counter = Counter(client for client, _ in core.flight.jobs)
    shown = (lambda client: True) if key is None else (lambda client: _key_of_peer(core, client) == key)
    subs = sorted((r for r in table.submitters.values() if shown(r.id)), key=lambda r: (r.name, r.id))
    counters = core.meter.counters(core.stats, {
        "flight_dropped": core.flight.dropped, "workers": len(rows), "submitters": len(table.submitters),
        "in_flight": len(core.flight.jobs)})
    return StatusReply(
        version=VERSION, uptime=_age(now, core.started), heartbeat=core.timing.heartbeat,
        workers=tuple(_worker(r, now, core.timing.heartbeat) for r in rows[:MAX_STATUS_WORKERS]),
        workers_total=len(rows),
        submitters=tuple(SubmitterState(id=r.id, name=cut(r.name, LABEL), heard=_age(now, r.last_heard),
                                        jobs=per_client[r.id]) for r in subs[:MAX_STATUS_SUBMITTERS]),
        submitters_total=len(subs),
        flight=_flight(core, now, shown),
        flight_total=sum(per_client[r.id] for r in subs) if key is not None else len(core.flight.jobs),
        recent=tuple(_recent(core, now, key)),
        counters=tuple(sorted(counters.items())),
    )


def _age(now: float, then: float) -> float:
    return round(max(0.0, now - then), 3)


def _worker(row, now: float, heartbeat: float) -> WorkerState:
    load = row.load
    heard = _age(now, row.last_heard)
    state = "draining" if load.draining else "late" if heard > LATE * heartbeat else "full" if load.full else "ok"
    return WorkerState(id=row.id, name=cut(row.name, LABEL), host=cut(row.host, LABEL),
                       version=cut(row.version, LABEL), slots=load.slots, queue=load.queue,
                       running=load.running, state=state, heard=heard, draining=load.draining)


def _key_of_peer(core, peer: str) -> str | None:
    row = core.table.submitters.get(peer)
    return key_of(row.user) if row is not None and row.user else None


def _flight(core, now: float, shown) -> tuple:
    """The oldest jobs in flight. On each worker the oldest `running` count as running (workers
    start jobs in arrival order; one waiting for inputs can make the guess wrong)."""
    workers, submitters = core.table.workers, core.table.submitters
    seen: Counter = Counter()
    out = []
    for (client, job), (worker, command, attempt, since, _) in core.flight.jobs.items():
        if len(out) >= MAX_STATUS_FLIGHT:
            break
        row = workers.get(worker)
        sub = submitters.get(client)
        running = row.load.running if row else 0
        state = "running" if seen[worker] < running else "queued"
        seen[worker] += 1   # others' jobs too: they hold the worker's first slots all the same
        if shown(client):
            out.append(FlightInfo(job=job, client=client, submitter=cut(sub.name, LABEL) if sub else "",
                                  worker=worker, worker_name=cut(row.name, LABEL) if row else "",
                                  command=command, attempt=attempt, age=_age(now, since), state=state))
    return tuple(out)


def _recent(core, now: float, key: str | None):
    """Newest first; with `key`, only those of submitters with that key (as they were sent)."""
    workers = core.table.workers
    for at, worker, (job, client, status, code, elapsed, error), flight, whose in reversed(core.flight.recent):
        if key is not None and whose != key:
            continue
        row = workers.get(worker)
        yield ResultInfo(job=job, client=client, worker=worker,
                         worker_name=cut(row.name, LABEL) if row else "",
                         command=flight[1] if flight else "", status=status, code=code,
                         elapsed=round(elapsed, 3), ago=_age(now, at), error=cut(error, EXCERPT))
