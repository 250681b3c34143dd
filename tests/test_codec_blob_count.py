"""encode refuses what decode would refuse: too many blob frames (a RESULT of ~100 000 outputs)."""

import pytest

from protocol import FileRef, Result
from protocol.codec import MAX_BLOBS, decode, encode
from protocol.errors import DecodeError, EncodeError


def result(n: int) -> tuple[Result, list]:
    outs = tuple(FileRef(path=f"out/{i}", mode=0o644, blob=i + 1, digest="0" * 64, size=0) for i in range(n))
    return Result(job=1, client="c" * 16, status="exited", stdout=0, outputs=outs), [b"made\n"] + [b""] * n


def test_encode_refuses_more_blob_frames_than_decode_accepts():
    msg, blobs = result(MAX_BLOBS)          # stdout + MAX_BLOBS outputs: one frame too many
    with pytest.raises(DecodeError):
        decode([b"RAKE/1", b"\x80", *blobs])  # sanity: the receiver's limit
    with pytest.raises(EncodeError, match="blob frames exceed"):
        encode(msg, blobs)


def test_encode_accepts_the_limit():
    msg, blobs = result(MAX_BLOBS - 1)
    decode(encode(msg, blobs))


def test_outputs_with_the_same_contents_travel_in_one_frame_each_kept_under_its_name():
    import hashlib
    from protocol import Job, Load
    from worker.execute import Outcome
    from worker.result import result_message
    from worker.sandbox import OutputFile
    empty, made = hashlib.sha256(b"").hexdigest(), hashlib.sha256(b"made\n").hexdigest()
    files = [OutputFile(f"out/{i}", 0o644, b"", empty, 0) for i in range(MAX_BLOBS - 3)]
    files += [OutputFile("a", 0o755, b"made\n", made, 5), OutputFile("b", 0o644, b"made\n", made, 5),
              OutputFile("big", 0o644, None, "f" * 64, 1 << 30)]
    msg, blobs = result_message(Job(job=1, worker="w", command="true", client="c"),
                                Outcome("exited", stdout=b"hi\n", outputs=files), Load(queue=0, running=0, slots=1, seq=1))
    assert blobs == [b"hi\n", b"", b"made\n"]
    back, got = decode(encode(msg, blobs))
    by_path = {f.path: f for f in back.outputs}
    assert len(by_path) == MAX_BLOBS and got[by_path["out/99996"].blob] == b""
    assert got[by_path["a"].blob] == got[by_path["b"].blob] == b"made\n" and by_path["a"].mode == 0o755
    assert by_path["big"].blob is None and got[back.stdout] == b"hi\n"
