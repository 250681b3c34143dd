"""Garbage on the wire comes out as DecodeError, and encode refuses what a receiver would reject."""

import math

import msgpack
import pytest

from protocol import (
    SIGNATURE, Bye, DecodeError, EncodeError, FileRef, Heartbeat, Job, Load, Result, decode,
    encode,
)
from protocol.codec import MAX_HEADER, encode_forward
from protocol.schema import MAX_COMMAND, MAX_ID, MAX_ITEMS, U32, dump_struct

from tests.codec_helpers import LOAD, header_frames, raw_header


def valid_job_header(**changes):
    header = raw_header(Job(job=5, worker="aa01", command="make",
                            files=(FileRef(path="a.c", mode=0o644, blob=0),), timeout=1.0))
    header.update(changes)
    return header


def valid_result_header(**changes):
    header = raw_header(Result(job=5, client="sub", status="exited", stdout=0, stderr=1, load=LOAD))
    header.update(changes)
    return header


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
