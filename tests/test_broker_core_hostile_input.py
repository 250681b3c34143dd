"""The broker core given garbage, random frames, messages at the size limit and floods."""

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core import BrokerCore
from protocol import SIGNATURE, Error, Hello, Job, Result, decode, encode
from protocol.codec import MAX_HEADER

from tests.broker_core_helpers import SUB, TIMING, W1, W2, cluster, core, decoded, ready


# ---- hostile input -----------------------------------------------------------------------

GARBAGE = [
    [],
    [b"RAKE/2", msgpack.packb({"type": "HELLO", "version": "1"})],
    [SIGNATURE, b"\xc1"],
    [SIGNATURE, msgpack.packb(["HELLO"])],
    [SIGNATURE, msgpack.packb({"type": "JOB", "job": -1, "worker": W1, "command": "x"})],
    [SIGNATURE, msgpack.packb({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0,
                                                             "slots": 1, "seq": math.nan}})],
    [SIGNATURE, msgpack.packb({"type": "JOB", "job": 1, "worker": W1, "command": "x",
                               "files": [{"path": "a", "mode": 0, "blob": 3}]})],
    [SIGNATURE, b"\x00" * (MAX_HEADER + 1)],
]


@pytest.mark.parametrize("frames", GARBAGE)
def test_garbage_frames_are_counted_and_answered_with_an_error(frames):
    b = cluster()
    sends = b.on_frames(1.0, SUB, frames)
    [(peer, msg, _)] = decoded(sends)
    assert peer == SUB and isinstance(msg, Error) and msg.code == "bad-message"
    assert b.stats["rejected"] == 1
    assert b.table.workers[W1].load.seq == 1


def test_garbage_from_an_unknown_peer_is_answered_without_registering_it():
    b = core()
    [(peer, msg, _)] = decoded(b.on_frames(0.0, "dead", [b"junk"]))
    assert peer == "dead" and msg.code == "bad-message"
    assert b.table.role("dead") is None and b.stats["rejected"] == 1


@settings(max_examples=1000, deadline=None, database=None)
@given(peer=st.sampled_from([W1, W2, SUB, "0bad"]),
       frames=st.lists(st.binary(max_size=40), max_size=5))
def test_random_frames_never_make_the_broker_raise(peer, frames):
    b = cluster()
    before = b.stats["rejected"]
    sends = b.on_frames(1.0, peer, frames)
    for s in sends:
        decode(s.frames)   # whatever it answers is itself a valid message
    assert b.stats["rejected"] == before + 1


def pad_to_limit(header, key):
    """Pack `header` with header[key] a string just long enough to make exactly MAX_HEADER bytes."""
    header[key] = ""
    length = MAX_HEADER - len(msgpack.packb(header))
    assert length > 0
    while len(msgpack.packb({**header, key: "x" * length})) > MAX_HEADER:
        length -= 1    # longer strings take a longer length prefix
    header[key] = "x" * length
    return msgpack.packb(header)


@pytest.mark.parametrize("kind", ["JOB", "RESULT"])
def test_a_valid_message_at_the_size_limit_is_never_fatal_to_the_broker(kind):
    b = cluster()
    if kind == "JOB":
        msg, peer = Job(job=1, worker=W1, command="x", client=""), SUB
    else:
        msg, peer = Result(job=1, client=SUB, status="exited", error="", worker=""), W1
    frames = encode(msg)
    header = msgpack.unpackb(frames[1])
    blobs = [b"data"]
    # Pad with many input files / skipped outputs so the header is exactly at the limit.
    def fill(key, item):   # as many items as leave less than one more to pad with
        header[key] = []
        room = MAX_HEADER - len(msgpack.packb(header)) - 100
        header[key] = [item(i) for i in range(room // len(msgpack.packb(item(0))))]
    if kind == "JOB":
        fill("files", lambda i: {"path": f"{i:05d}" + "p" * 3995, "mode": 0o644, "blob": 0})
        packed = pad_to_limit(header, "command")
    else:
        fill("skipped", lambda i: "s" * 3000)   # leaves less than the 4096 `error` may pad
        packed = pad_to_limit(header, "error")
    assert len(packed) == MAX_HEADER
    decode([SIGNATURE, packed, *blobs])    # a valid message
    sends = b.on_frames(1.0, peer, [SIGNATURE, packed, *blobs])
    for s in sends:
        decode(s.frames)


@pytest.mark.parametrize("flood", ["long routing id", "error", "result for a gone submitter"])
def test_a_flood_any_peer_can_send_is_counted_but_logged_only_at_powers_of_two(flood):
    lines = []
    b = BrokerCore(TIMING, 0.0, log=lines.append)
    ready(b, W1, 0.0)
    peer, frames = {
        "long routing id": ("4c" * 40, encode(Hello(version="0.1.0", name="sub"))),
        "error": (W1, encode(Error(code="bad-message", message="x"))),
        "result for a gone submitter": (W1, encode(Result(job=1, client=SUB, status="exited"))),
    }[flood]
    lines.clear()
    for i in range(1000):
        b.on_frames(0.001 * i, peer, frames)
    assert len(lines) == 10 + 6   # the first ten, then at 16, 32, ... 512 of 1000
    assert sum(b.stats[k] for k in ("rejected", "peer_errors", "results_dropped")) == 1000


def test_a_worker_that_says_ready_again_is_logged_as_joined_once():
    lines = []
    b = BrokerCore(TIMING, 0.0, log=lines.append)
    for t in (0.0, 0.1, 0.2):   # after a broker restart it answers each unknown-peer ERROR
        ready(b, W1, t, name="w1")
    assert sum(" joined" in line for line in lines) == 1
