"""Messages handed between peers in one process (the embedded cluster), never encoded."""

from __future__ import annotations

from typing import Any, NamedTuple

from protocol.errors import EncodeError
from protocol.schema import MAX_ID


class Parcel(NamedTuple):
    """A message and its blob frames, handed to a peer in this process as they are.

    Messages are frozen, so the receiver can keep the sender's object; and the broker, the
    worker and the submitter of the embedded cluster built it themselves, from messages they
    checked on arrival, so encoding it only to check and decode it again would be work for
    nothing (a third of the embedded cluster's CPU per action, measured)."""
    msg: Any
    blobs: list


def stamped(msg: Any, **stamps: str) -> Any:
    """A copy of `msg` with routing fields set to peer ids, as encode_forward stamps them."""
    copy = object.__new__(type(msg))
    copy.__dict__.update(msg.__dict__)
    for name, value in stamps.items():
        if name not in copy.__dict__ or not isinstance(value, str) or len(value) > MAX_ID:
            raise EncodeError(f"cannot stamp {name}={value!r:.40} on {msg.TYPE}")
        copy.__dict__[name] = value
    return copy


def blob_bytes(item: Any) -> int:
    """Bytes of the blob frames of a Parcel, or of all frames of an encoded message."""
    frames = item.blobs if isinstance(item, Parcel) else item
    return sum(len(memoryview(f)) for f in frames)
