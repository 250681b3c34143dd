"""Every message type survives encode then decode unchanged (protocol/codec.py)."""

import pytest

from protocol import SIGNATURE, Bye, DecodeError, EncodeError, FileRef, Job, ProtocolError, decode, encode
from protocol.messages import MESSAGE_TYPES

from tests.codec_helpers import ONE_OF_EACH, header_frames, raw_header


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
