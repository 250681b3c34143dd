"""What the submitter's core asks its session to do: run, send, cancel, deliver, report."""

from __future__ import annotations

from typing import NamedTuple

from protocol.messages import Result


class RunLocal(NamedTuple):
    index: int


class SendJob(NamedTuple):
    index: int
    worker: str
    job: int
    attempt: int


class SendCancel(NamedTuple):
    worker: str
    job: int
    kill: bool


class Deliver(NamedTuple):
    """A remote action ended for good: write its outputs, print its output."""
    index: int
    result: Result
    blobs: list
    worker: str


class Failed(NamedTuple):
    """An action failed without output of its own (lost, no worker, refused)."""
    index: int
    message: str


class Withdrawn(NamedTuple):
    """An action whose job was taken back before it ran (a failure halted the actionset)."""
    index: int


class Note(NamedTuple):
    text: str
    error: bool = False   # printed as an error, also under -q


class WorkerGone(NamedTuple):
    """A worker is gone for good: outputs still being fetched from it will not come."""
    worker: str
