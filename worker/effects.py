"""What the worker's core asks its loop to do: send, start, kill, reconnect, refetch, serve, take."""

from __future__ import annotations

from typing import NamedTuple

from protocol import Chunk, Job, Want

Key = tuple[str, int]   # (client id, job id): job ids are only unique per submitter


class Send(NamedTuple):
    frames: list   # or a Parcel, to a broker in this process


class Start(NamedTuple):
    key: Key
    job: Job
    files: list          # (path, mode, digest): every blob is in the store


class Kill(NamedTuple):
    key: Key


class Reconnect(NamedTuple):
    pass


class Refetch(NamedTuple):
    """The broker forgot us (it restarted, or dropped us): what it held of our downloads,
    WANTs and chunks, is lost; they are asked for again."""


class GiveUp(NamedTuple):
    """The broker refuses us for good (another heartbeat interval): stop, saying why."""
    why: str


class Abandon(NamedTuple):
    """Stop fetching a blob (its submitter is gone)."""
    digest: str


class Serve(NamedTuple):
    """A peer Wants bytes of a blob we hold."""
    want: Want


class Take(NamedTuple):
    """A chunk of a blob we are fetching arrived."""
    chunk: Chunk
    blobs: list
