"""Hypothesis strategies for hostile frames, built from the wire schema, and the fuzz tally
that tests/conftest.py prints as `fuzz: N inputs, 0 crashes, 0 invalid accepted`."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from protocol import DecodeError, decode, encode
from protocol.codec import SIGNATURE
from protocol.messages import MESSAGE_TYPES, BlobIndex, PeerId
from protocol.schema import Bool, Choice, Float, Int, ListOf, MapOf, Maybe, Str, Struct

# Examples per decoder: a thousand in the normal run (ten times hypothesis' default; the suite
# must fit CI's time); RAKE_FUZZ_EXAMPLES=100000 for a long one.
EXAMPLES = int(os.environ.get("RAKE_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
BLOBS = 4          # every valid message carries this many blob frames; blob indexes stay below
TALLY: Counter = Counter()   # inputs, crashes, invalid accepted


def tally(kind: str) -> None:
    TALLY[kind] += 1


def values(spec, ids: tuple = ()) -> st.SearchStrategy:
    """Valid wire values for a field spec; peer-id fields favour `ids` (peers the target knows)."""
    if spec == BlobIndex:
        return st.integers(0, BLOBS - 1)
    if isinstance(spec, Int):   # small values often: job ids the target knows, counts at 0
        return st.integers(spec.lo, min(spec.hi, spec.lo + 3)) | st.integers(spec.lo, spec.hi)
    if isinstance(spec, Float):
        return st.floats(spec.lo, spec.hi, allow_nan=False, allow_infinity=False)
    if isinstance(spec, Str):
        chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="" if spec.nul_ok else "\0")
        text = st.text(chars, min_size=0 if spec.empty_ok else 1, max_size=min(spec.max_len, 24))
        edge = st.just("é" * spec.max_len)       # at the limit, counted in characters
        if spec == PeerId and ids:
            return st.sampled_from(ids) | text
        return text | edge
    if isinstance(spec, Bool):
        return st.booleans()
    if isinstance(spec, Choice):
        return st.sampled_from(spec.options)
    if isinstance(spec, Maybe):
        return st.none() | values(spec.inner, ids)
    if isinstance(spec, ListOf):
        return st.lists(values(spec.item, ids), max_size=min(3, spec.max_items)).map(tuple)
    if isinstance(spec, MapOf):
        pairs = st.dictionaries(values(spec.key, ids), values(spec.value, ids), max_size=min(3, spec.max_items))
        return pairs.map(lambda d: tuple(sorted(d.items())))
    if isinstance(spec, Struct):
        return structs(spec.cls, ids)
    raise TypeError(f"no strategy for {spec!r}")


@functools.cache   # building strategies costs more than drawing from them
def structs(cls: type, ids: tuple = ()) -> st.SearchStrategy:
    fields = {f.name: values(f.metadata["spec"], ids) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


@functools.cache
def messages(ids: tuple = (), types: tuple | None = None) -> st.SearchStrategy:
    """A valid message of any (or the given) type."""
    return st.one_of([structs(MESSAGE_TYPES[k], ids) for k in sorted(types or MESSAGE_TYPES)])


def valid_frames(msg) -> list:
    return encode(msg, [b"blob%d" % i for i in range(BLOBS)])


_ints = st.integers(-2**63, 2**64 - 1)    # what msgpack can carry
_wrong = st.one_of(
    st.none(), st.booleans(), _ints,
    st.sampled_from([-1, 2**63, 2**64 - 1, -2**63, 100_001, 4097, 2**32]),
    st.floats(), st.sampled_from([float("nan"), float("inf"), -0.0, 1e300]),
    st.text(max_size=8), st.sampled_from(["x" * 5000, "x" * 70_000, "", "HELLO", "exited"]),
    st.lists(_ints, max_size=3), st.dictionaries(st.text(max_size=4), _ints, max_size=2),
    st.just(list(range(100_001))), st.just({"path": "a", "mode": 0o644}),
)


def _paths(value, prefix=()):
    """Every (path of keys/indexes) into a decoded header, so a mutation can reach nested fields."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated_frames(draw, ids: tuple = (), types=None):
    """A valid encoding with one thing broken: a field's value or type, a missing or extra
    key, another message type, cut or flipped header bytes, wrong blob counts, extra frames."""
    frames = valid_frames(draw(messages(ids, types)))
    header = msgpack.unpackb(frames[1], raw=False)
    how = draw(st.sampled_from(["field", "drop", "extra", "retype", "cut", "flip", "blobs", "sig"]))
    if how == "field":
        path = draw(st.sampled_from(list(_paths(header))[1:]))
        header = _replace(header, path, draw(_wrong))
    elif how == "drop":
        header.pop(draw(st.sampled_from(sorted(header))), None)
    elif how == "extra":
        header[draw(st.text(max_size=10))] = draw(_wrong)
    elif how == "retype":
        header["type"] = draw(st.sampled_from(sorted(MESSAGE_TYPES)) | st.text(max_size=8) | _wrong)
    packed = msgpack.packb(header, use_bin_type=True)
    if how == "cut":
        packed = packed[:draw(st.integers(0, max(0, len(packed) - 1)))]
    elif how == "flip" and packed:
        at = draw(st.integers(0, len(packed) - 1))
        packed = packed[:at] + bytes([draw(st.integers(0, 255))]) + packed[at + 1:]
    blobs = frames[2:]
    if how == "blobs":
        blobs = blobs[:draw(st.integers(0, BLOBS))] + draw(st.lists(st.binary(max_size=8), max_size=3))
    signature = draw(st.sampled_from([b"RAKE/2", b"", SIGNATURE + b"\0"])) if how == "sig" else SIGNATURE
    return [signature, packed, *blobs]


random_frames = st.lists(st.binary(max_size=64), max_size=6)


def hostile_frames(ids: tuple = (), types=None) -> st.SearchStrategy:
    """Random bytes, valid messages, and valid messages with something broken."""
    return st.one_of(random_frames, messages(ids, types).map(valid_frames), mutated_frames(ids, types))


def accepted_round_trips(frames) -> None:
    """decode raises only DecodeError; what it accepts encodes again and decodes to the same."""
    tally("inputs")
    try:
        msg, blobs = decode(frames)
    except DecodeError:
        return
    except Exception:
        tally("crashes")
        raise
    try:
        assert decode(encode(msg, blobs)) == (msg, blobs)
    except Exception:
        tally("invalid accepted")
        raise


def check_sent(frames_list) -> None:
    """What a core sends in answer must itself be a valid message: count it if not."""
    for frames in frames_list:
        try:
            decode(frames)
        except Exception:
            tally("invalid accepted")
            raise
