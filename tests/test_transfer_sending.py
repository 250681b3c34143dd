"""The sending side of chunked transfers: windows, restarts, blobs held until sent."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time

from protocol import Want, decode
from worker.incoming import Incoming
from worker.transfer import CHUNK, WINDOW, Outgoing


def test_a_sender_never_sends_more_than_a_window_for_one_want_whatever_credit_is_claimed(tmp_path):
    data = os.urandom(3 * WINDOW)
    (tmp_path / "blob").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out = Outgoing(lambda d: str(tmp_path / "blob") if d == digest else None)
    frames = out.on_want("peer", Want(to="me", digest=digest, upto=2**62, restart=True))
    assert len(frames) == WINDOW // CHUNK


def test_a_chunk_from_any_peer_but_the_one_fetched_from_is_ignored(tmp_path):
    # A third peer knowing the worker's id and a file's sha256 could otherwise end (or
    # corrupt) another submitter's download with one forged CHUNK{missing}.
    from protocol import Chunk
    receiver = Incoming(lambda: str(tmp_path / "part"))
    digest = "ab" * 32
    receiver.start("holder", digest, 5 << 20)
    forged = Chunk(to="me", digest=digest, offset=0, total=0, missing=True, sender="intruder")
    assert receiver.on_chunk(forged, b"") == ([], None, None)
    assert digest in receiver.downloads
    real = dataclasses.replace(forged, sender="holder")
    assert receiver.on_chunk(real, b"")[2].startswith("holder no longer has blob abababababab (")   # the holder may say so


def test_restarting_a_stream_again_within_the_window_sends_nothing_more(tmp_path):
    # A peer that restarts and never reads would have every restart push a fresh window
    # into the broker (476 MiB after 150 WANTs); a real receiver restarts an open stream only
    # after a stall, and a finished one (fetched again, or it hashed wrong) now and then.
    data = os.urandom(3 * CHUNK)
    (tmp_path / "blob").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out = Outgoing(lambda d: str(tmp_path / "blob"), window=0.5)
    again = Want(to="me", digest=digest, upto=2**62, restart=True)
    part = Want(to="me", digest=digest, upto=CHUNK, restart=True)
    assert len(out.on_want("open", part)) == 1       # a stream left open
    assert out.on_want("open", again) == []          # restarted at once: nothing
    for _ in range(4):                               # finished each time: a new fetch may come
        assert len(out.on_want("peer", again)) == 3
    assert out.on_want("peer", again) == []          # but not window after window
    time.sleep(0.55)
    assert len(out.on_want("peer", again)) == 3      # after a window: served again
    assert len(out.on_want("open", again)) == 3


def test_a_blob_a_result_named_is_awaited_until_it_has_all_gone_out_or_nobody_asks(tmp_path):
    data = os.urandom(2 * CHUNK)
    (tmp_path / "blob").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out = Outgoing(lambda d: str(tmp_path / "blob"), window=10.0)
    out.expect([digest], time.monotonic())
    assert out.awaited(time.monotonic())
    out.on_want("peer", Want(to="me", digest=digest, upto=CHUNK, restart=True))
    assert out.awaited(time.monotonic())             # half of it has gone
    out.on_want("peer", Want(to="me", digest=digest, upto=2 * CHUNK))
    assert out.awaited(time.monotonic())              # all gone: the peer may ask for more
    assert not out.awaited(time.monotonic() + 11)     # a window without a WANT: nobody asks
    out.expect(["ab" * 32], time.monotonic())
    assert not out.awaited(time.monotonic() + 11)    # never asked for within a window


def test_a_big_output_is_held_from_eviction_until_it_has_all_gone_out_however_late_it_is_asked_for(tmp_path):
    """A submitter fetches a few at a time: the last may be asked for long after its RESULT
    (past RECENT), and evicting it meanwhile made the action run again."""
    data = os.urandom(2 * CHUNK)
    (tmp_path / "blob").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out = Outgoing(lambda d: str(tmp_path / "blob"), window=10.0)
    out.expect([digest, "ab" * 32], 0.0)
    assert sorted(out.held(400.0)) == sorted([digest, "ab" * 32])   # awaited no more, but held
    out.on_want("peer", Want(to="me", digest=digest, upto=2 * CHUNK, restart=True))
    out.on_want("peer", Want(to="me", digest=digest, upto=2 * CHUNK))
    assert out.held(401.0) == ["ab" * 32]      # all of it has gone out
    assert out.held(3601.0) == []              # never asked for: held an hour at most


def test_a_draining_worker_stays_while_a_submitter_fetching_a_few_at_a_time_asks_on(tmp_path):
    """The submitter downloads 4 at a time: the fifth blob's first WANT may come more than a
    window after its RESULT, but WANTs for the others keep coming meanwhile."""
    (tmp_path / "blob").write_bytes(b"x" * 10)
    out = Outgoing(lambda d: str(tmp_path / "blob"), window=10.0)
    t0 = time.monotonic()
    out.expect(["ab" * 32, "cd" * 32], t0 - 30)   # named 30 s ago, one window is 10 s
    out.on_want("peer", Want(to="me", digest="ab" * 32, upto=10, restart=True))
    assert out.awaited(time.monotonic())


def test_a_want_for_an_unknown_blob_is_answered_missing(tmp_path):
    [frames] = Outgoing(lambda d: None).on_want("peer", Want(to="me", digest="ab" * 32, upto=10, restart=True))
    assert decode(frames)[0].missing


def test_a_piece_longer_than_the_blob_said_ends_its_download_with_nothing_written(tmp_path):
    from protocol import Chunk
    receiver = Incoming(lambda: str(tmp_path / "part"))
    digest = "cd" * 32
    receiver.start("holder", digest, 6)
    sent, done, why = receiver.on_chunk(Chunk(to="me", digest=digest, offset=0, total=6, sender="holder"), b"x" * (1 << 20))
    assert (sent, done) == ([], None) and why == "holder sent blob cdcdcdcdcdcd longer than its 6 bytes"
    assert digest not in receiver.downloads and not any(p.stat().st_size for p in tmp_path.iterdir())
