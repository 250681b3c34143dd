"""The results the submitter has yet to acknowledge, per worker (docs/protocol.md, ACK and JOB)."""

from __future__ import annotations

import dataclasses

from protocol import Ack, EncodeError, Job, encode


class PendingAcks:
    """Every result is acknowledged, repeats too, so its worker stops resending it. A result
    seen for the first time may ride on the next JOB to its worker; a repeated one gets an
    ACK of its own, because its first acknowledgement may have ridden on a JOB through a
    peer of an older release, which drops that field."""

    def __init__(self):
        self.riding: dict[str, list[int]] = {}   # may go on a JOB, or in an ACK
        self.lone: dict[str, list[int]] = {}     # go in an ACK

    def add(self, worker: str, job: int, repeat: bool) -> None:
        (self.lone if repeat else self.riding).setdefault(worker, []).append(job)

    def for_job(self, worker: str) -> tuple[int, ...]:
        """What a JOB to `worker` may carry; call carried() once it has been encoded."""
        return tuple(self.riding.get(worker, ()))

    def carried(self, worker: str) -> None:
        self.riding.pop(worker, None)

    def flush(self) -> list[Ack]:
        """One ACK per worker for everything still owed, which is then no longer owed."""
        acks = [Ack(worker=w, jobs=tuple(self.riding.get(w, []) + self.lone.get(w, [])))
                for w in {**self.riding, **self.lone}]
        self.riding.clear()
        self.lone.clear()
        return acks


def job_frames(job: Job, blobs: list, acks: PendingAcks, pack=encode):
    """Frames for `job` (or what `pack` makes of it: a Parcel for the embedded broker),
    carrying what is owed to its worker (one ACK fewer), unless that would push the header
    over its limit: then those go in an ACK of their own."""
    owed = acks.for_job(job.worker)
    if owed:
        try:
            frames = pack(dataclasses.replace(job, acks=owed), blobs)
        except EncodeError:
            pass
        else:
            acks.carried(job.worker)
            return frames
    return pack(job, blobs)
