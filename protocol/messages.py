"""Every rake message as one frozen dataclass, and the table that maps wire names to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocol.schema import (
    MAX_COMMAND, MAX_ID, MAX_ITEMS, U32, Bool, Choice, FileName, Float, Int, ListOf, MapOf, Maybe,
    Str, Struct, spec,
)
from protocol.status import (
    MAX_COUNTERS, MAX_STATUS_FLIGHT, MAX_STATUS_RECENT, MAX_STATUS_SUBMITTERS, MAX_STATUS_WORKERS,
    FlightInfo, ResultInfo, SubmitterState, WorkerState,
)

PeerId = Str(MAX_ID)
BlobIndex = Int(0, MAX_ITEMS)
JobId = Int(0, 2**63 - 1)


Digest = Str(64)    # sha256, lower-case hex


@dataclass(frozen=True)
class FileRef:
    """A file named in a message: relative path, mode bits, content digest and size, and the
    blob frame holding its bytes when they travel inline (None: fetch it by digest)."""
    path: str = spec(FileName(4096))
    mode: int = spec(Int(0, 0o7777))
    blob: int | None = spec(Maybe(BlobIndex), None)
    digest: str = spec(Digest, "")
    size: int = spec(Int(0), 0)


MAX_SEEN = 4096   # submitters in Load.seen: a worker holding jobs of more leaves the rest out


@dataclass(frozen=True)
class Load:
    """A worker's state as the scheduler needs it; `seen` maps client id -> last job id received."""
    queue: int = spec(Int(0, U32))       # queued + running
    running: int = spec(Int(0, U32))
    slots: int = spec(Int(1, 4096))
    seq: int = spec(Int(0))              # grows with every report, so older reports lose
    seen: tuple = spec(MapOf(PeerId, JobId, max_items=MAX_SEEN), ())
    draining: bool = spec(Bool(), False)  # finishing its jobs, taking no new ones
    full: bool = spec(Bool(), False)      # its disk is full: its jobs fail (it is given none while others live)

    def same_state(self, other: "Load") -> bool:
        """Equal but for `seq`: a heartbeat that changes nothing is not worth a push."""
        return (self.queue, self.running, self.slots, self.seen, self.draining, self.full) == (
            other.queue, other.running, other.slots, other.seen, other.draining, other.full)

    def seen_from(self, client: str) -> int:
        return dict(self.seen).get(client, 0)


@dataclass(frozen=True)
class WorkerInfo:
    """One row of the broker's worker table as pushed to one submitter."""
    id: str = spec(PeerId)
    name: str = spec(Str(256))
    host: str = spec(Str(256))
    slots: int = spec(Int(1, 4096))
    queue: int = spec(Int(0, U32))
    running: int = spec(Int(0, U32))
    seq: int = spec(Int(0))
    seen: int = spec(JobId, 0)           # highest job id of the recipient's that it holds
    version: str = spec(Str(64), "")
    draining: bool = spec(Bool(), False)
    full: bool = spec(Bool(), False)


@dataclass(frozen=True)
class Hello:
    """Submitter -> broker: I am here; send me the worker table."""
    TYPE: ClassVar[str] = "HELLO"
    version: str = spec(Str(64))
    name: str = spec(Str(256), "")
    heartbeat: float = spec(Float(0.0, 3600.0), 0.0)   # the sender's interval; 0: not said


@dataclass(frozen=True)
class Ready:
    """Worker -> broker: I joined (or rejoined after a broker restart)."""
    TYPE: ClassVar[str] = "READY"
    name: str = spec(Str(256))
    host: str = spec(Str(256))
    version: str = spec(Str(64))
    load: Load = spec(Struct(Load))
    heartbeat: float = spec(Float(0.0, 3600.0), 0.0)   # the sender's interval; 0: not said


@dataclass(frozen=True)
class Heartbeat:
    """Any direction: still alive. Workers attach their load. The broker sets `welcome` on
    the one it sends a worker right after registering its READY (after any CANCEL then)."""
    TYPE: ClassVar[str] = "HEARTBEAT"
    load: Load | None = spec(Maybe(Struct(Load)), None)
    welcome: bool = spec(Bool(), False)


@dataclass(frozen=True)
class Workers:
    """Broker -> submitter: the worker table (`full`) or the rows that changed and ids gone.
    A table too big for one header comes in pieces, all but the last with `more` set."""
    TYPE: ClassVar[str] = "WORKERS"
    full: bool = spec(Bool())
    workers: tuple = spec(ListOf(Struct(WorkerInfo), max_items=65536))
    gone: tuple = spec(ListOf(PeerId, max_items=65536), ())
    more: bool = spec(Bool(), False)


@dataclass(frozen=True)
class Job:
    """Submitter -> broker -> worker: run `command` in a sandbox holding `files`."""
    TYPE: ClassVar[str] = "JOB"
    job: int = spec(JobId)
    worker: str = spec(PeerId)
    command: str = spec(Str(MAX_COMMAND, empty_ok=False, nul_ok=False))
    files: tuple = spec(ListOf(Struct(FileRef)), ())
    client: str = spec(PeerId, "")       # filled in by the broker from the real sender
    attempt: int = spec(Int(1, 100), 1)
    timeout: float | None = spec(Maybe(Float(0.0, 1e9)), None)
    # Results of this client's that arrived from this worker: an ACK riding along (saves one).
    acks: tuple = spec(ListOf(JobId, max_items=65536), ())
    # Without -k: if this job fails, the worker starts none of this client's jobs still
    # queued there (they would start before the submitter's CANCEL could arrive).
    halt_on_failure: bool = spec(Bool(), False)
    # The submitter's umask: the action makes its files as it would there (None: the worker's).
    umask: int | None = spec(Maybe(Int(0, 0o777)), None)

    def blob_refs(self) -> list[int]:
        return [f.blob for f in self.files if f.blob is not None]


@dataclass(frozen=True)
class Result:
    """Worker -> broker -> submitter: how a job ended, its output and its output files."""
    TYPE: ClassVar[str] = "RESULT"
    STATUSES: ClassVar[tuple] = ("exited", "signalled", "cancelled", "timeout", "error")
    job: int = spec(JobId)
    client: str = spec(PeerId)
    status: str = spec(Choice(STATUSES))
    code: int = spec(Int(0, 255), 0)     # exit status, or signal number when signalled
    stdout: int | None = spec(Maybe(BlobIndex), None)
    stderr: int | None = spec(Maybe(BlobIndex), None)
    outputs: tuple = spec(ListOf(Struct(FileRef)), ())
    skipped: tuple = spec(ListOf(Str()), ())    # outputs not sent, each "path: why"
    error: str = spec(Str(), "")
    elapsed: float = spec(Float(), 0.0)
    attempt: int = spec(Int(1, 100), 1)
    worker: str = spec(PeerId, "")       # filled in by the broker from the real sender
    load: Load | None = spec(Maybe(Struct(Load)), None)
    truncated: tuple = spec(ListOf(Choice(("stdout", "stderr")), 2), ())   # cut by the worker

    def blob_refs(self) -> list[int]:
        refs = [f.blob for f in self.outputs if f.blob is not None]
        return refs + [b for b in (self.stdout, self.stderr) if b is not None]

    def unfetchable(self) -> str | None:
        """The first output with neither its bytes nor a digest to fetch them by: nothing could
        ever arrive for it. Checked by the submitter, not the decoder (docs/protocol.md, FileRef)."""
        return next((f.path for f in self.outputs if f.blob is None and not f.digest), None)


@dataclass(frozen=True)
class Cancel:
    """Submitter -> broker -> worker: drop a job; `kill` also stops it if already running.

    The broker sends one with `everything` set when a submitter is gone: all its jobs go.
    """
    TYPE: ClassVar[str] = "CANCEL"
    job: int = spec(JobId)
    worker: str = spec(PeerId)
    kill: bool = spec(Bool(), False)
    client: str = spec(PeerId, "")
    everything: bool = spec(Bool(), False)


@dataclass(frozen=True)
class Ack:
    """Submitter -> broker -> worker: these results arrived; stop keeping them for resending."""
    TYPE: ClassVar[str] = "ACK"
    worker: str = spec(PeerId)
    jobs: tuple = spec(ListOf(JobId, max_items=65536))
    client: str = spec(PeerId, "")


@dataclass(frozen=True)
class Want:
    """Receiver -> broker -> sender: send me the bytes of `digest` up to offset `upto`.

    A Want with `restart` opens a transfer from offset 0 (first time, or again because the
    digest did not match); later ones extend the credit as the receiver writes what came,
    so nothing in between buffers more than one window. Credit for a transfer the sender
    has finished is ignored.
    """
    TYPE: ClassVar[str] = "WANT"
    to: str = spec(PeerId)
    digest: str = spec(Digest)
    upto: int = spec(Int(0))
    restart: bool = spec(Bool(), False)
    sender: str = spec(PeerId, "")       # filled in by the broker from the real sender


@dataclass(frozen=True)
class Chunk:
    """Sender -> broker -> receiver: bytes [offset, offset + len(blob 0)) of `digest`."""
    TYPE: ClassVar[str] = "CHUNK"
    to: str = spec(PeerId)
    digest: str = spec(Digest)
    offset: int = spec(Int(0))
    total: int = spec(Int(0))
    sender: str = spec(PeerId, "")       # filled in by the broker from the real sender
    missing: bool = spec(Bool(), False)  # the sender does not have this digest (no blob)

    def blob_refs(self) -> list[int]:
        return [] if self.missing else [0]


@dataclass(frozen=True)
class Error:
    """Anyone -> peer: a request could not be served (see docs/protocol.md for codes)."""
    TYPE: ClassVar[str] = "ERROR"
    CODES: ClassVar[tuple] = ("unknown-worker", "bad-message", "version", "unknown-peer", "worker-busy",
                              "bad-timing")
    code: str = spec(Choice(CODES))
    message: str = spec(Str(), "")
    job: int | None = spec(Maybe(JobId), None)


@dataclass(frozen=True)
class Bye:
    """Peer -> broker: I am leaving; forget me now rather than after the liveness window."""
    TYPE: ClassVar[str] = "BYE"
    reason: str = spec(Str(256), "")


@dataclass(frozen=True)
class Status:
    """Anyone -> broker: how is the cluster? Answered with STATUS-REPLY; registers nobody."""
    TYPE: ClassVar[str] = "STATUS"


@dataclass(frozen=True)
class StatusReply:
    """Broker -> asker: workers, submitters, actions in flight, recent results and counters."""
    TYPE: ClassVar[str] = "STATUS-REPLY"
    version: str = spec(Str(64))
    uptime: float = spec(Float())
    heartbeat: float = spec(Float())
    workers: tuple = spec(ListOf(Struct(WorkerState), max_items=MAX_STATUS_WORKERS))
    workers_total: int = spec(Int(0))
    submitters: tuple = spec(ListOf(Struct(SubmitterState), max_items=MAX_STATUS_SUBMITTERS), ())
    submitters_total: int = spec(Int(0), 0)
    flight: tuple = spec(ListOf(Struct(FlightInfo), max_items=MAX_STATUS_FLIGHT), ())
    flight_total: int = spec(Int(0), 0)
    recent: tuple = spec(ListOf(Struct(ResultInfo), max_items=MAX_STATUS_RECENT), ())
    counters: tuple = spec(MapOf(Str(64), Int(0), max_items=MAX_COUNTERS), ())


MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls for cls in (
        Hello, Ready, Heartbeat, Workers, Job, Result, Cancel, Ack, Want, Chunk, Error, Bye,
        Status, StatusReply)
}
