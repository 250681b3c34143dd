"""The rows of a STATUS-REPLY (workers, submitters, actions in flight, recent results) and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.schema import MAX_ID, Bool, Float, Int, Str, dump_struct, spec

# Row caps: together they keep the worst-case header (every string at its limit, 4-byte
# characters) under the 1 MiB that the header limit (16 MiB) once was. `*_total` fields say how many rows there were.
MAX_STATUS_WORKERS = 500
MAX_STATUS_SUBMITTERS = 100
MAX_STATUS_FLIGHT = 200
MAX_STATUS_RECENT = 50
MAX_COUNTERS = 256
LABEL = 64          # names, hosts and versions are cut to this many characters in a status
EXCERPT = 80        # and commands to this many

PeerId = Str(MAX_ID)
JobId = Int(0, 2**63 - 1)
Seconds = Float(0.0, 1e12)


@dataclass(frozen=True)
class WorkerState:
    """One worker as the broker sees it; `state` is ok, draining, late (missed a heartbeat) or full (its disk)."""
    id: str = spec(PeerId)
    name: str = spec(Str(LABEL))
    host: str = spec(Str(LABEL))
    version: str = spec(Str(LABEL))
    slots: int = spec(Int(1, 4096))
    queue: int = spec(Int(0, 2**32 - 1))      # held: waiting for inputs, queued and running
    running: int = spec(Int(0, 2**32 - 1))
    state: str = spec(Str(16))
    heard: float = spec(Seconds)              # seconds since its last valid message
    draining: bool = spec(Bool(), False)


@dataclass(frozen=True)
class SubmitterState:
    """One registered submitter and how many of its jobs are in flight."""
    id: str = spec(PeerId)
    name: str = spec(Str(LABEL))
    heard: float = spec(Seconds)
    jobs: int = spec(Int(0))


@dataclass(frozen=True)
class FlightInfo:
    """A job forwarded to a worker with no RESULT yet. `state` (queued or running) is an
    estimate: the oldest `running` jobs of a worker are taken to be the running ones."""
    job: int = spec(JobId)
    client: str = spec(PeerId)
    submitter: str = spec(Str(LABEL))
    worker: str = spec(PeerId)
    worker_name: str = spec(Str(LABEL))
    command: str = spec(Str(EXCERPT))
    attempt: int = spec(Int(1, 100), 1)
    age: float = spec(Seconds, 0.0)           # seconds since the broker forwarded it
    state: str = spec(Str(16), "queued")


@dataclass(frozen=True)
class ResultInfo:
    """A RESULT the broker forwarded lately; `ago` in seconds, `elapsed` as the worker measured."""
    job: int = spec(JobId)
    client: str = spec(PeerId)
    worker: str = spec(PeerId)
    worker_name: str = spec(Str(LABEL))
    command: str = spec(Str(EXCERPT))         # "" when the broker did not see the JOB
    status: str = spec(Str(16))
    code: int = spec(Int(0, 255), 0)
    elapsed: float = spec(Seconds, 0.0)
    ago: float = spec(Seconds, 0.0)
    error: str = spec(Str(EXCERPT), "")       # the RESULT's error text, cut


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, marked with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_json(reply: Any) -> dict:
    """The documented JSON shape of a StatusReply: its wire fields, `counters` as an object."""
    return dump_struct(reply)
