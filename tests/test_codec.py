"""Tests of the wire format (protocol/codec.py, protocol/messages.py, SPEC section 4).

Every message type must survive encode -> decode unchanged, and anything else a peer could
put on the wire must come out as `protocol.DecodeError` and nothing else.
"""

import dataclasses
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    SIGNATURE, Ack, Bye, Cancel, Chunk, Want, DecodeError, EncodeError, Error, FileRef, Heartbeat, Hello, Job,
    Load, ProtocolError, Ready, Result, Status, StatusReply, WorkerInfo, Workers, decode, encode,
)
from protocol.codec import MAX_HEADER, encode_forward
from protocol.messages import MESSAGE_TYPES
from protocol.schema import MAX_COMMAND, MAX_ID, MAX_ITEMS, U32, dump_struct
from protocol.status import (
    EXCERPT, LABEL, MAX_COUNTERS, MAX_STATUS_FLIGHT, MAX_STATUS_RECENT, MAX_STATUS_SUBMITTERS,
    MAX_STATUS_WORKERS, FlightInfo, ResultInfo, SubmitterState, WorkerState, status_json,
)
from tests.fuzzing import FUZZ, accepted_round_trips

LOAD = Load(queue=3, running=2, slots=4, seq=17, seen=(("sub-a", 5), ("sub-b", 9)))

ONE_OF_EACH = [
    (Hello(version="0.1.0", name="alice:123"), []),
    (Ready(name="w1", host="host-a", version="0.1.0", load=LOAD), []),
    (Heartbeat(), []),
    (Heartbeat(load=LOAD), []),
    (Workers(full=True, workers=(
        WorkerInfo(id="aa01", name="w1", host="h1", slots=8, queue=1, running=1, seq=3,
                   seen=4, version="0.1.0"),
        WorkerInfo(id="bb02", name="w2", host="h2", slots=2, queue=0, running=0, seq=1),
    )), []),
    (Workers(full=False, workers=(), gone=("aa01", "cc03")), []),
    (Job(job=42, worker="aa01", command="cc -c x.c", attempt=2, timeout=12.5, client="sub-a",
         files=(FileRef(path="x.c", mode=0o644, blob=0), FileRef(path="inc/x.h", mode=0o600, blob=1))),
     [b"int main;", b"#define X 1\n"]),
    (Job(job=0, worker="aa01", command="true"), []),
    (Result(job=42, client="sub-a", status="exited", code=3, stdout=0, stderr=1,
            outputs=(FileRef(path="out/x.o", mode=0o755, blob=2),), skipped=("l: symlink not returned",),
            error="", elapsed=0.25, attempt=2, worker="aa01", load=LOAD),
     [b"out\n", b"\xff\xfe binary err", b"\x7fELF..."]),
    (Result(job=1, client="sub-a", status="signalled", code=9), []),
    (Result(job=2, client="sub-a", status="timeout"), []),
    (Result(job=3, client="sub-a", status="cancelled"), []),
    (Result(job=4, client="sub-a", status="error", error="cannot stage"), []),
    (Cancel(job=7, worker="aa01", kill=True, client="sub-a"), []),
    (Cancel(job=0, worker="aa01", kill=True, client="sub-a", everything=True), []),
    (Ack(worker="aa01", jobs=(1, 2, 99), client="sub-a"), []),
    (Want(to="aa01", digest="ab" * 32, upto=8 << 20, restart=True, sender="s1"), []),
    (Chunk(to="aa01", digest="ab" * 32, offset=1 << 20, total=3 << 20, sender="s1"), [b"x" * 100]),
    (Chunk(to="aa01", digest="ab" * 32, offset=0, total=0, missing=True), []),
    (Error(code="unknown-worker", message="no worker aa01", job=7), []),
    (Error(code="bad-message"), []),
    (Bye(reason="draining"), []),
    (Bye(), []),
    (Status(), []),
    (StatusReply(version="0.1.0", uptime=12.5, heartbeat=1.0, workers=(
        WorkerState(id="aa01", name="w1", host="h1", version="0.1.0", slots=8, queue=3, running=2,
                    state="ok", heard=0.2),), workers_total=1,
        submitters=(SubmitterState(id="sub-a", name="laptop:42", heard=0.1, jobs=1),), submitters_total=1,
        flight=(FlightInfo(job=7, client="sub-a", submitter="laptop:42", worker="aa01", worker_name="w1",
                           command="cc -c x.c", attempt=2, age=1.5, state="running"),), flight_total=1,
        recent=(ResultInfo(job=6, client="sub-a", worker="aa01", worker_name="w1", command="true",
                           status="exited", code=0, elapsed=0.01, ago=3.0),),
        counters=(("in.JOB", 7), ("results", 6))), []),
    (StatusReply(version="0.1.0", uptime=0.0, heartbeat=1.0, workers=(), workers_total=0), []),
]


def header_frames(header, blobs=()):
    """Frames with a hand-made header, for the decoder to judge."""
    return [SIGNATURE, msgpack.packb(header, use_bin_type=True), *blobs]


def raw_header(msg):
    """The header map `encode` would send for `msg`, to be tampered with."""
    frames = encode(msg, [b"x"] * 8)
    return msgpack.unpackb(frames[1], raw=False)


def valid_job_header(**changes):
    header = raw_header(Job(job=5, worker="aa01", command="make",
                            files=(FileRef(path="a.c", mode=0o644, blob=0),), timeout=1.0))
    header.update(changes)
    return header


def valid_result_header(**changes):
    header = raw_header(Result(job=5, client="sub", status="exited", stdout=0, stderr=1, load=LOAD))
    header.update(changes)
    return header


# ---- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("msg, blobs", ONE_OF_EACH, ids=lambda v: getattr(v, "TYPE", None))
def test_every_message_type_round_trips_with_its_blobs(msg, blobs):
    frames = encode(msg, blobs)
    assert frames[0] == SIGNATURE
    decoded, got_blobs = decode(frames)
    assert decoded == msg
    assert type(decoded) is type(msg)
    assert got_blobs == blobs


def test_the_round_trip_cases_cover_every_message_type():
    assert {type(m).TYPE for m, _ in ONE_OF_EACH} == set(MESSAGE_TYPES)


def test_blob_frames_are_returned_as_the_same_objects_not_copies():
    blobs = [b"a" * 1000, b"b" * 1000]
    job = Job(job=1, worker="w", command="c", files=(FileRef(path="a", mode=0o644, blob=0),
                                                     FileRef(path="b", mode=0o644, blob=1)))
    frames = encode(job, blobs)
    assert frames[2] is blobs[0] and frames[3] is blobs[1]
    _, got = decode(frames)
    assert got[0] is blobs[0] and got[1] is blobs[1]


def test_decode_accepts_memoryviews_and_bytearrays_as_frames():
    msg = Bye(reason="x")
    frames = encode(msg)
    decoded, _ = decode([memoryview(frames[0]), bytearray(frames[1])])
    assert decoded == msg


def test_unknown_header_keys_are_ignored_for_forward_compatibility():
    header = raw_header(Bye(reason="r"))
    header["future_field"] = [1, 2, 3]
    msg, _ = decode(header_frames(header))
    assert msg == Bye(reason="r")


def test_decode_error_is_the_peers_fault_and_encode_error_is_ours():
    assert issubclass(DecodeError, ProtocolError) and DecodeError.peer_fault
    assert issubclass(EncodeError, ProtocolError) and not EncodeError.peer_fault


# ---- garbage in, DecodeError out ---------------------------------------------------------

GARBAGE = {
    "no frames": [],
    "only a signature": [SIGNATURE],
    "wrong signature": [b"HTTP/1.1", msgpack.packb({"type": "BYE"})],
    "wrong major version": [b"RAKE/2", msgpack.packb({"type": "BYE"})],
    "empty signature": [b"", msgpack.packb({"type": "BYE"})],
    "oversize signature frame": [SIGNATURE + b"x" * 100, msgpack.packb({"type": "BYE"})],
    "header is not msgpack": [SIGNATURE, b"\xc1\xc1\xc1"],
    "header is truncated msgpack": [SIGNATURE, msgpack.packb({"type": "BYE", "reason": "abc"})[:-2]],
    "header has trailing bytes": [SIGNATURE, msgpack.packb({"type": "BYE"}) + b"\x01"],
    "header is empty": [SIGNATURE, b""],
    "header is a list": header_frames(["BYE"]),
    "header is an int": header_frames(7),
    "header is a string": header_frames("BYE"),
    "header is nil": header_frames(None),
    "header is invalid utf-8": [SIGNATURE, b"\x81\xa4type\xa3\xff\xfe\xfd"],
    "header holds binary data": header_frames({"type": "BYE", "reason": b"bytes"}),
    "header holds an ext type": [SIGNATURE, msgpack.packb({"type": "BYE", "x": msgpack.ExtType(5, b"abc")})],
    "header holds a timestamp": [SIGNATURE, msgpack.packb({"type": "BYE", "t": msgpack.Timestamp(1, 0)})],
    "map with integer keys": [SIGNATURE, msgpack.packb({1: "BYE", "type": "BYE"})],
    "no type": header_frames({"reason": "x"}),
    "unknown type": header_frames({"type": "EXPLODE"}),
    "type is not a string": header_frames({"type": 3}),
    "type is a list": header_frames({"type": ["BYE"]}),
    "type in lower case": header_frames({"type": "bye"}),
    "missing required field": header_frames({k: v for k, v in valid_job_header().items() if k != "command"}, [b"x"]),
    "missing nested required field": header_frames({"type": "READY", "name": "w", "host": "h", "version": "1",
                                                    "load": {"queue": 0, "running": 0, "slots": 1}}),
    "string where int expected": header_frames(valid_job_header(job="5"), [b"x"]),
    "float where int expected": header_frames(valid_job_header(job=5.0), [b"x"]),
    "bool where int expected": header_frames(valid_job_header(job=True), [b"x"]),
    "bool where blob index expected": header_frames(valid_result_header(stdout=False), [b"a", b"b"]),
    "int where bool expected": header_frames({"type": "CANCEL", "job": 1, "worker": "w", "kill": 1}),
    "int where string expected": header_frames(valid_job_header(command=12), [b"x"]),
    "nil where string expected": header_frames(valid_job_header(worker=None), [b"x"]),
    "map where list expected": header_frames(valid_job_header(files={"a": 1}), [b"x"]),
    "list where struct expected": header_frames(valid_job_header(files=[[1, 2, 3]]), [b"x"]),
    "string where map expected": header_frames(valid_result_header(load="busy"), [b"a", b"b"]),
    "bool where float expected": header_frames(valid_job_header(timeout=True), [b"x"]),
    "string where float expected": header_frames(valid_result_header(elapsed="1.5"), [b"a", b"b"]),
    "NaN float": header_frames(valid_job_header(timeout=math.nan), [b"x"]),
    "infinite float": header_frames(valid_job_header(timeout=math.inf), [b"x"]),
    "minus infinity float": header_frames(valid_result_header(elapsed=-math.inf), [b"a", b"b"]),
    "negative float": header_frames(valid_job_header(timeout=-1.0), [b"x"]),
    "float over its range": header_frames(valid_job_header(timeout=1e300), [b"x"]),
    "negative job id": header_frames(valid_job_header(job=-1), [b"x"]),
    "job id over int64": header_frames(valid_job_header(job=2**63), [b"x"]),
    "job id at uint64 max": header_frames(valid_job_header(job=2**64 - 1), [b"x"]),
    "negative file mode": header_frames(valid_job_header(files=[{"path": "a", "mode": -1, "blob": 0}]), [b"x"]),
    "file mode over 0o7777": header_frames(valid_job_header(files=[{"path": "a", "mode": 0o10000, "blob": 0}]), [b"x"]),
    "exit code over 255": header_frames(valid_result_header(code=256), [b"a", b"b"]),
    "zero slots": header_frames({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0, "slots": 0, "seq": 1}}),
    "slots over 4096": header_frames({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0, "slots": 4097, "seq": 1}}),
    "queue over u32": header_frames({"type": "HEARTBEAT", "load": {"queue": U32 + 1, "running": 0, "slots": 1, "seq": 1}}),
    "negative seen job id": header_frames({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0, "slots": 1,
                                                                          "seq": 1, "seen": {"c": -4}}}),
    "seen is a list": header_frames({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0, "slots": 1,
                                                                    "seq": 1, "seen": [["c", 4]]}}),
    "attempt zero": header_frames(valid_job_header(attempt=0), [b"x"]),
    "attempt over 100": header_frames(valid_job_header(attempt=101), [b"x"]),
    "unknown result status": header_frames(valid_result_header(status="exploded"), [b"a", b"b"]),
    "unknown error code": header_frames({"type": "ERROR", "code": "teapot"}),
    "unhashable choice value": header_frames({"type": "ERROR", "code": ["unknown-worker"]}),
    "empty command": header_frames(valid_job_header(command=""), [b"x"]),
    "command over its limit": header_frames(valid_job_header(command="x" * (MAX_COMMAND + 1)), [b"x"]),
    "peer id over its limit": header_frames(valid_job_header(worker="w" * (MAX_ID + 1)), [b"x"]),
    "version over its limit": header_frames({"type": "HELLO", "version": "v" * 65}),
    "path over its limit": header_frames(valid_job_header(files=[{"path": "p" * 4097, "mode": 0, "blob": 0}]), [b"x"]),
    "error text over its limit": header_frames(valid_result_header(error="e" * 4097), [b"a", b"b"]),
    "too many workers": header_frames({"type": "WORKERS", "full": True, "workers": [], "gone": ["x"] * 65537}),
    "blob index out of range": header_frames(valid_job_header(), []),
    "blob index far out of range": header_frames(valid_job_header(files=[{"path": "a", "mode": 0, "blob": MAX_ITEMS}]), [b"x"]),
    "stdout blob out of range": header_frames(valid_result_header(stdout=5), [b"a", b"b"]),
    "output blob out of range": header_frames(valid_result_header(outputs=[{"path": "o", "mode": 0o644, "blob": 2}]),
                                              [b"a", b"b"]),
    "oversize header": [SIGNATURE, b"\x00" * (MAX_HEADER + 1)],
    "oversize but valid msgpack header": header_frames({"type": "BYE", "reason": "r", "pad": "x" * MAX_HEADER}),
    "deeply nested header": [SIGNATURE, b"\x81\xa4type" + b"\x91" * 5000 + b"\xc0"],
}


@pytest.mark.parametrize("frames", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_frames_raise_decode_error_and_nothing_else(frames):
    with pytest.raises(DecodeError):
        decode(frames)


def test_decode_errors_say_what_was_wrong():
    with pytest.raises(DecodeError, match="RAKE/2"):
        decode(GARBAGE["wrong major version"])
    with pytest.raises(DecodeError, match="command"):
        decode(GARBAGE["missing required field"])
    with pytest.raises(DecodeError, match="blob"):
        decode(GARBAGE["blob index out of range"])


def test_a_header_of_exactly_the_limit_is_accepted():
    header = {"type": "BYE", "reason": "r", "pad": ""}
    base = len(msgpack.packb(header))
    # str32 length prefix: 5 bytes instead of the 1 byte of an empty fixstr
    header["pad"] = "x" * (MAX_HEADER - base - 4)
    packed = msgpack.packb(header)
    assert len(packed) == MAX_HEADER
    msg, _ = decode([SIGNATURE, packed])
    assert msg == Bye(reason="r")


def test_encode_refuses_a_blob_index_out_of_range():
    job = Job(job=1, worker="w", command="c", files=(FileRef(path="a", mode=0o644, blob=1),))
    with pytest.raises(EncodeError):
        encode(job, [b"only one"])
    result = Result(job=1, client="c", status="exited", stdout=0, stderr=1)
    with pytest.raises(EncodeError):
        encode(result, [b"out"])


def result_with_header_of(size):
    """(a RESULT whose encoded header, before the broker stamps `worker`, is `size` bytes, its
    blob count): thousands of long output names, the last one's length making up the rest."""
    def build(count, last):
        outs = [FileRef(path="d/" + "x" * 2000 + f"/{i:05d}", mode=0o644, blob=i, digest="e" * 64, size=0)
                for i in range(count)]
        outs.append(FileRef(path="y" * last, mode=0o644, blob=count, digest="e" * 64, size=0))
        return Result(job=1, client="53" * 8, status="exited", outputs=tuple(outs))

    def packed(result):
        return len(msgpack.packb(dict(dump_struct(result), type="RESULT"), use_bin_type=True))
    count = size // 2200
    for _ in range(50):   # a few rounds: each output is about 2.1 kB, the last one takes up to 3 kB more
        short = size - packed(build(count, 300))
        if 0 <= short <= 3000:
            break
        count += max(1, short // 2200) if short > 0 else -1
    return build(count, 300 + size - packed(build(count, 300))), count + 1   # (300 and up: same prefix)


def test_a_header_a_sender_may_build_still_fits_once_the_broker_stamps_its_longest_id():
    from protocol.codec import MAX_SENT
    result, blobs = result_with_header_of(MAX_SENT)
    frames = encode(result, [b""] * blobs)
    assert len(frames[1]) == MAX_SENT
    forwarded = encode_forward(decode(frames)[0], frames[2:], worker="f" * MAX_ID)
    assert len(forwarded[1]) <= MAX_HEADER and decode(forwarded)[0].worker == "f" * MAX_ID
    over, blobs = result_with_header_of(MAX_SENT + 1)   # would pass the receiver, not the broker
    with pytest.raises(EncodeError, match="exceeds"):
        encode(over, [b""] * blobs)


def test_a_huge_map_key_makes_a_short_reason_for_logs_and_replies():
    load = {"queue": 0, "running": 0, "slots": 1, "seq": 0, "seen": {"k" * (8 << 20): -1}}
    frames = header_frames({"type": "READY", "name": "n", "host": "h", "version": "v", "load": load})
    with pytest.raises(DecodeError) as caught:
        decode(frames)
    assert "field READY.load.seen.kkk" in str(caught.value) and len(str(caught.value)) < 300


def test_encode_refuses_a_header_over_the_limit():
    with pytest.raises(EncodeError):
        encode(Job(job=1, worker="w", command="x" * (MAX_HEADER + 1)))


@pytest.mark.parametrize("msg", [
    Job(job=-1, worker="w", command="c"),
    Job(job=1, worker="w", command=""),
    Result(job=1, client="c", status="exploded"),
    Heartbeat(load=Load(queue=0, running=0, slots=0, seq=1)),
], ids=["negative job id", "empty command", "unknown status", "zero slots"])
def test_encode_refuses_a_message_the_receiver_would_reject(msg):
    with pytest.raises(EncodeError):
        encode(msg)


def test_encode_refuses_something_that_is_not_a_message():
    with pytest.raises(EncodeError):
        encode(object())


# ---- property tests ----------------------------------------------------------------------

_msgpack_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
                    | st.floats() | st.text(max_size=20) | st.binary(max_size=20))
_msgpack_values = st.recursive(
    _msgpack_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(sorted({
    "type", "job", "worker", "command", "files", "client", "attempt", "timeout", "status", "code",
    "stdout", "stderr", "outputs", "skipped", "error", "elapsed", "load", "queue", "running",
    "slots", "seq", "seen", "full", "workers", "gone", "kill", "message", "reason", "name",
    "host", "version", "path", "mode", "blob", "id",
}))
_plausible_headers = st.dictionaries(
    _field_names, _msgpack_values, max_size=8,
).flatmap(lambda d: st.sampled_from(sorted(MESSAGE_TYPES)).map(lambda t: {**d, "type": t}))


@st.composite
def _hostile_frames(draw):
    """Mostly-plausible frames: a right or wrong signature, a header near the schema, blobs."""
    signature = draw(st.sampled_from([SIGNATURE, b"RAKE/2", b""]) | st.binary(max_size=20))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        header = draw(st.binary(max_size=64))
    elif kind == 1:
        header = msgpack.packb(draw(_msgpack_values), use_bin_type=True)
    else:
        header = msgpack.packb(draw(_plausible_headers), use_bin_type=True)
        if kind == 3 and header:
            cut = draw(st.integers(0, len(header) - 1))
            header = header[:cut] + draw(st.binary(max_size=4)) + header[cut + 1:]
    blobs = draw(st.lists(st.binary(max_size=8), max_size=3))
    return [signature, header, *blobs][: draw(st.integers(0, 5))]


@FUZZ
@given(_hostile_frames())
def test_decode_of_plausible_frames_only_ever_raises_decode_error(frames):
    # Random bytes and schema-built mutations are in tests/test_fuzz.py; these are headers
    # made of known field names with values of any type. What gets through round-trips.
    accepted_round_trips(frames)


_ids = st.text(max_size=MAX_ID)
_labels = st.text(max_size=40)
_finite = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
_loads = st.builds(
    Load,
    queue=st.integers(0, U32), running=st.integers(0, U32), slots=st.integers(1, 4096),
    seq=st.integers(0, 2**63 - 1),
    seen=st.dictionaries(_ids, st.integers(0, 2**63 - 1), max_size=4).map(lambda d: tuple(sorted(d.items()))),
)


@st.composite
def _files_and_blobs(draw, max_files=5):
    blobs = draw(st.lists(st.binary(max_size=32), max_size=6))
    files = ()
    if blobs:
        files = tuple(draw(st.lists(st.builds(
            FileRef, path=st.text(min_size=1, max_size=50), mode=st.integers(0, 0o7777),
            blob=st.integers(0, len(blobs) - 1)), max_size=max_files)))
    return files, blobs


@st.composite
def _jobs(draw):
    files, blobs = draw(_files_and_blobs())
    job = Job(
        job=draw(st.integers(0, 2**63 - 1)), worker=draw(_ids),
        command=draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=200)), files=files, client=draw(_ids),
        attempt=draw(st.integers(1, 100)), timeout=draw(st.none() | _finite),
    )
    return job, blobs


@st.composite
def _results(draw):
    outputs, blobs = draw(_files_and_blobs())
    index = st.none() | (st.integers(0, len(blobs) - 1) if blobs else st.none())
    result = Result(
        job=draw(st.integers(0, 2**63 - 1)), client=draw(_ids),
        status=draw(st.sampled_from(Result.STATUSES)), code=draw(st.integers(0, 255)),
        stdout=draw(index), stderr=draw(index), outputs=outputs,
        skipped=tuple(draw(st.lists(_labels, max_size=3))), error=draw(_labels),
        elapsed=draw(_finite), attempt=draw(st.integers(1, 100)), worker=draw(_ids),
        load=draw(st.none() | _loads),
    )
    return result, blobs


@settings(max_examples=500, deadline=None, database=None)
@given(st.one_of(_jobs(), _results()))
def test_random_valid_jobs_and_results_round_trip_equal(msg_and_blobs):
    msg, blobs = msg_and_blobs
    decoded, got_blobs = decode(encode(msg, blobs))
    assert decoded == msg
    assert got_blobs == blobs


# ---- STATUS-REPLY bounds ----------------------------------------------------------------

def _widest_status_reply() -> StatusReply:
    """Every row cap reached, every string at its limit in 4-byte characters."""
    wide = lambda n: "\U0001F600" * n  # noqa: E731
    pid = "f" * MAX_ID
    return StatusReply(
        version=wide(64), uptime=1e9, heartbeat=3600.0, workers_total=2**40,
        workers=tuple(WorkerState(id=pid, name=wide(LABEL), host=wide(LABEL), version=wide(LABEL),
                                  slots=4096, queue=U32, running=U32, state=wide(16), heard=1e9,
                                  draining=True) for _ in range(MAX_STATUS_WORKERS)),
        submitters=tuple(SubmitterState(id=pid, name=wide(LABEL), heard=1e9, jobs=2**40)
                         for _ in range(MAX_STATUS_SUBMITTERS)), submitters_total=2**40,
        flight=tuple(FlightInfo(job=2**63 - 1, client=pid, submitter=wide(LABEL), worker=pid,
                                worker_name=wide(LABEL), command=wide(EXCERPT), attempt=100, age=1e9,
                                state=wide(16)) for _ in range(MAX_STATUS_FLIGHT)), flight_total=2**40,
        recent=tuple(ResultInfo(job=2**63 - 1, client=pid, worker=pid, worker_name=wide(LABEL),
                                command=wide(EXCERPT), status=wide(16), code=255, elapsed=1e9, ago=1e9,
                                error=wide(EXCERPT)) for _ in range(MAX_STATUS_RECENT)),
        counters=tuple((f"{i:064d}", 2**63 - 1) for i in range(MAX_COUNTERS)),
    )


def test_the_widest_possible_status_reply_still_fits_in_one_header():
    reply = _widest_status_reply()
    frames = encode(reply)
    assert len(frames[1]) <= MAX_HEADER
    assert decode(frames)[0] == reply


def test_a_status_reply_with_more_rows_than_its_cap_is_refused():
    header = raw_header(StatusReply(version="1", uptime=0.0, heartbeat=1.0, workers=(), workers_total=0))
    row = dict(id="aa", name="w", host="h", version="1", slots=1, queue=0, running=0, state="ok", heard=0.0)
    header["workers"] = [row] * (MAX_STATUS_WORKERS + 1)
    with pytest.raises(DecodeError, match="workers"):
        decode(header_frames(header))


def test_the_json_shape_of_a_status_is_its_wire_fields_with_counters_as_an_object():
    reply = next(m for m, _ in ONE_OF_EACH if isinstance(m, StatusReply))
    shape = status_json(reply)
    assert set(shape) == {"version", "uptime", "heartbeat", "workers", "workers_total", "submitters",
                          "submitters_total", "flight", "flight_total", "recent", "counters"}
    assert shape["counters"] == {"in.JOB": 7, "results": 6}
    assert shape["workers"][0]["name"] == "w1" and shape["flight"][0]["state"] == "running"


# ---- forwarding ---------------------------------------------------------------------------

def test_a_forwarded_message_decodes_as_the_original_with_the_stamped_sender():
    job = Job(job=7, worker="w" * 16, command="cc -c a.c", files=(FileRef(path="a.c", mode=0o644, blob=0),))
    msg, blobs = decode(encode(job, [b"int a;"]))
    again, blobs_again = decode(encode_forward(msg, blobs, client="c" * 16))
    assert again == dataclasses.replace(job, client="c" * 16)
    assert [bytes(b) for b in blobs_again] == [b"int a;"]


@pytest.mark.parametrize("stamp", [{"nosuchfield": "ab"}, {"client": "x" * (MAX_ID + 1)}, {"client": 5}])
def test_forwarding_refuses_a_stamp_that_is_not_a_short_routing_field(stamp):
    msg, blobs = decode(encode(Ack(worker="w1", jobs=(1,))))
    with pytest.raises(EncodeError):
        encode_forward(msg, blobs, **stamp)


def test_a_job_command_with_a_nul_is_refused_on_decode_and_encode():
    frames = encode(Job(job=1, worker="w1", command="true"))
    header = msgpack.unpackb(frames[1])
    header["command"] = "echo a\0b"
    with pytest.raises(DecodeError, match="command"):
        decode([frames[0], msgpack.packb(header)])
    with pytest.raises(EncodeError):
        encode(Job(job=1, worker="w1", command="echo a\0b"))


def test_a_path_that_is_not_utf8_travels_as_its_bytes_and_comes_back_the_same():
    name = b"caf\xe9/\xff".decode("utf-8", "surrogateescape")
    result = Result(job=1, client="ab", status="exited",
                    outputs=(FileRef(path=name, mode=0o644, digest="a" * 64), FileRef(path="plain", mode=0o644)))
    frames = encode(result)
    assert msgpack.unpackb(frames[1])["outputs"][0]["path"] == list(b"caf\xe9/\xff")
    back, _ = decode(frames)
    assert [f.path for f in back.outputs] == [name, "plain"]


@pytest.mark.parametrize("path", [[256], [-1], ["a"], [1.0], [True], [65] * 4097])
def test_a_path_array_of_anything_but_at_most_4096_bytes_is_refused(path):
    header = msgpack.unpackb(encode(Result(job=1, client="ab", status="exited",
                                           outputs=(FileRef(path="x", mode=0o644),)))[1])
    header["outputs"][0]["path"] = path
    with pytest.raises(DecodeError, match="outputs"):
        decode([SIGNATURE, msgpack.packb(header)])


def test_a_result_output_with_neither_bytes_nor_digest_decodes_and_is_named_unfetchable():
    """The decoder lets it through (FileRef is shared with JOB, whose receiver answers RESULT
    error); the submitter asks unfetchable() and takes it as the worker's error."""
    inline = FileRef(path="inline", mode=0o644, blob=0)                  # no digest: hashed on arrival
    fetched = FileRef(path="fetched", mode=0o644, digest="ab" * 32, size=3)
    hollow = FileRef(path="hollow", mode=0o644)
    ok, _ = decode(encode(Result(job=1, client="c", status="exited", outputs=(inline, fetched)), [b"x"]))
    bad, _ = decode(encode(Result(job=1, client="c", status="exited", outputs=(inline, hollow, fetched)), [b"x"]))
    assert ok.unfetchable() is None
    assert bad.unfetchable() == "hollow"
