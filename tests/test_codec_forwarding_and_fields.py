"""Forwarded messages with their stamped sender, and commands, paths and outputs on the wire."""

import dataclasses

import msgpack
import pytest

from protocol import SIGNATURE, Ack, DecodeError, EncodeError, FileRef, Job, Result, decode, encode
from protocol.codec import encode_forward
from protocol.schema import MAX_ID


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
