"""Turn messages into multipart frames and frames back into checked messages."""

from __future__ import annotations

from typing import Any, Sequence

import msgpack

from protocol.errors import DecodeError, EncodeError
from protocol.messages import MESSAGE_TYPES
from protocol.schema import MAX_ID, dump_struct, load_struct

SIGNATURE = b"RAKE/1"
MAX_HEADER = 16 << 20   # control data (file contents go in blob frames), yet room for 100 000 outputs
# What a sender may build: the broker stamps peer ids (at most MAX_ID characters each, one or
# two per message) into what it forwards, which must still fit MAX_HEADER at the receiver.
MAX_SENT = MAX_HEADER - 4 * MAX_ID
MAX_BLOBS = 100_000
# The largest frame any socket accepts (zmq MAXMSGSIZE; checked again here for inproc). Files
# travel in pieces of at most 1 MiB; only stdout and stderr ride whole, in one frame each.
MAX_FRAME = 64 << 20

# Limits passed to msgpack so a hostile header cannot make the decoder allocate without bound.
_UNPACK_LIMITS = dict(
    max_str_len=MAX_HEADER, max_bin_len=0, max_array_len=100_000, max_map_len=100_000,
    max_ext_len=0,
)


def encode(msg: Any, blobs: Sequence = ()) -> list:
    """Frames for `msg`: signature, msgpack header, then the blob frames untouched."""
    try:
        header = dict(dump_struct(msg), type=msg.TYPE)
        load_struct(type(msg), header, msg.TYPE)   # what the receiver would refuse, we never send
        packed = msgpack.packb(header, use_bin_type=True)
    except (AttributeError, TypeError, ValueError, DecodeError) as e:
        raise EncodeError(f"cannot encode {type(msg).__name__}: {e}") from e
    if len(packed) > MAX_SENT:
        raise EncodeError(f"{msg.TYPE} header of {len(packed)} bytes exceeds {MAX_SENT}")
    _check_blob_refs(msg, len(blobs), EncodeError)
    _check_blob_sizes(blobs, EncodeError)
    return [SIGNATURE, packed, *blobs]


def encode_forward(msg: Any, blobs: Sequence, **stamps: str) -> list:
    """Frames for a message that passed decode() here, with routing fields (peer ids that
    were checked on arrival) stamped in: checked once on arrival, not again on the way out."""
    header = dump_struct(msg)
    for name, value in stamps.items():
        if name not in header or not isinstance(value, str) or len(value) > MAX_ID:
            raise EncodeError(f"cannot stamp {name}={value!r:.40} on {msg.TYPE}")
        header[name] = value
    header["type"] = msg.TYPE
    packed = msgpack.packb(header, use_bin_type=True)
    if len(packed) > MAX_HEADER:
        raise EncodeError(f"{msg.TYPE} header of {len(packed)} bytes exceeds {MAX_HEADER}")
    return [SIGNATURE, packed, *blobs]


def decode(frames: Sequence) -> tuple[Any, list]:
    """(message, blob frames) from received frames; raises DecodeError for anything invalid.

    Blob frames are returned as given (zmq.Frame or bytes) so they can be forwarded uncopied.
    """
    if len(frames) < 2:
        raise DecodeError(f"expected at least 2 frames, got {len(frames)}")
    if len(frames) - 2 > MAX_BLOBS:
        raise DecodeError(f"{len(frames) - 2} blob frames exceed {MAX_BLOBS}")
    signature = _small_bytes(frames[0], 16, "signature")
    if signature != SIGNATURE:
        raise DecodeError(f"unsupported protocol signature {signature[:16]!r}, want {SIGNATURE!r}")
    header = _unpack(_small_bytes(frames[1], MAX_HEADER, "header"))
    kind = header.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DecodeError(f"unknown message type {kind!r:.40}")
    msg = load_struct(cls, header, kind)
    blobs = list(frames[2:])
    _check_blob_refs(msg, len(blobs), DecodeError)
    _check_blob_sizes(blobs, DecodeError)
    return msg, blobs


def _small_bytes(frame: Any, limit: int, what: str) -> bytes:
    view = memoryview(frame)
    if view.nbytes > limit:
        raise DecodeError(f"{what} frame of {view.nbytes} bytes exceeds {limit}")
    return view.tobytes()


def _unpack(data: bytes) -> dict:
    try:
        header = msgpack.unpackb(data, raw=False, strict_map_key=True, **_UNPACK_LIMITS)
    except Exception as e:  # msgpack raises many types (ValueError, ExtraData, FormatError...)
        raise DecodeError(f"header is not valid msgpack: {type(e).__name__}") from e
    if not isinstance(header, dict):
        raise DecodeError(f"header must be a map, got {type(header).__name__}")
    return header


def _check_blob_sizes(blobs: Sequence, error: type) -> None:
    if len(blobs) > MAX_BLOBS:   # refused by decode: a sender must hear it, not resend forever
        raise error(f"{len(blobs)} blob frames exceed {MAX_BLOBS}")
    for i, blob in enumerate(blobs):
        size = memoryview(blob).nbytes
        if size > MAX_FRAME:
            raise error(f"blob {i} of {size} bytes exceeds the {MAX_FRAME >> 20} MiB frame limit")


def _check_blob_refs(msg: Any, count: int, error: type) -> None:
    refs = msg.blob_refs() if hasattr(msg, "blob_refs") else []
    bad = [r for r in refs if r >= count]
    if bad:
        raise error(f"{msg.TYPE} refers to blob {bad[0]} but carries {count} blob frames")
