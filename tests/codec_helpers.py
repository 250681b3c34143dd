"""Wire-format builders shared by the codec tests: one message of each type, raw headers."""

import msgpack

from protocol import (
    SIGNATURE, Ack, Bye, Cancel, Chunk, Want, Error, FileRef, Heartbeat, Hello, Job, Load, Ready,
    Result, Status, StatusReply, WorkerInfo, Workers, encode,
)
from protocol.status import FlightInfo, ResultInfo, SubmitterState, WorkerState


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
