"""Chunked transfers, the blob cache and the input gate, in one process with real files."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import os
import threading
import time

import pytest

from protocol import Chunk, FileRef, Job, Want, decode
from worker.cache import BlobCache
from worker.inputs import Fetch, InputGate, MemoryBlobs
from worker.transfer import CHUNK, WINDOW, Incoming, Outgoing


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
    assert receiver.on_chunk(real, b"")[2] == "holder no longer has blob abababababab"   # the holder may say so


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


def test_a_transfer_between_outgoing_and_incoming_arrives_whole_and_checked(tmp_path):
    data = os.urandom(2 * WINDOW + 12345)
    (tmp_path / "src").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    sender = Outgoing(lambda d: str(tmp_path / "src"))
    counter = iter(range(10**6))
    receiver = Incoming(lambda: str(tmp_path / f"part{next(counter)}"))
    queue = [decode(f)[0] for f in receiver.start("sender", digest, len(data))]
    done = None
    while queue and done is None:
        want = queue.pop(0)
        for frames in sender.on_want("receiver", want):
            chunk, blobs = decode(frames)
            chunk = dataclasses.replace(chunk, sender="sender")   # as the broker stamps it
            replies, done, failed = receiver.on_chunk(chunk, blobs[0])
            assert failed is None
            queue += [decode(f)[0] for f in replies]
    assert done is not None and open(done[1], "rb").read() == data


def test_downloads_over_the_limit_wait_their_turn_and_start_as_others_end(tmp_path):
    """A hundred big outputs at once must not each hold a window in the broker and here."""
    blobs = {hashlib.sha256(bytes([n]) * 100).hexdigest(): bytes([n]) * 100 for n in range(5)}
    counter = iter(range(10**6))
    receiver = Incoming(lambda: str(tmp_path / f"part{next(counter)}"), limit=2)
    asked = [decode(f)[0].digest for d in blobs for f in receiver.start("w", d, 100)]
    assert asked == list(blobs)[:2] and all(receiver.busy(d) for d in blobs)
    assert len(receiver.downloads) == 2 and len(os.listdir(tmp_path)) == 2   # no file for the others yet
    finished = []
    while asked:
        digest = asked.pop(0)
        replies, done, failed = receiver.on_chunk(Chunk(to="r", digest=digest, offset=0, total=100, sender="w"),
                                                  blobs[digest])
        finished.append(done[0])
        asked += [decode(f)[0].digest for f in replies + receiver.pump()]   # as its owner does
        assert len(receiver.downloads) <= 2
    assert finished == list(blobs)


def test_a_waiting_download_that_cannot_start_is_given_up_not_forgotten(tmp_path):
    def no_descriptors():
        raise OSError(24, "Too many open files")
    receiver = Incoming(lambda: str(tmp_path / "part0"), limit=1)
    receiver.start("w", "aa" * 32, 100)
    receiver.temp_path = no_descriptors
    assert receiver.start("w", "bb" * 32, 100) == []   # waits its turn
    receiver.abandon("aa" * 32)
    assert receiver.pump() == []
    assert receiver.given_up() == [("bb" * 32, "cannot receive blob bbbbbbbbbbbb: Too many open files")]
    assert not receiver.busy("bb" * 32)


def test_a_waiting_download_from_a_lost_peer_is_dropped_with_the_rest(tmp_path):
    receiver = Incoming(lambda: str(tmp_path / f"part{len(os.listdir(tmp_path))}"), limit=1)
    receiver.start("w1", "aa" * 32, 100)
    receiver.start("w2", "bb" * 32, 100)
    receiver.start("w1", "cc" * 32, 100)
    assert sorted(receiver.fail_peer("w1")) == ["aa" * 32, "cc" * 32]
    assert [decode(f)[0].digest for f in receiver.pump()] == ["bb" * 32]
    receiver.abandon("bb" * 32)
    assert not receiver.busy("bb" * 32) and receiver.pump() == []


def test_a_file_cut_short_between_windows_is_answered_missing_and_ends_the_download(tmp_path):
    """A submitter's input rewritten mid-fetch: before, empty chunks went back and forth for ever."""
    data = os.urandom(WINDOW + 12345)
    src = tmp_path / "src"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    sender = Outgoing(lambda d: str(src) if src.stat().st_size == len(data) else None)
    receiver = Incoming(lambda: str(tmp_path / "part"))
    queue = [decode(f)[0] for f in receiver.start("sender", digest, len(data))]
    outcome = None
    for _ in range(100):   # bounded: a window and a missing chunk
        if not queue:
            break
        for frames in sender.on_want("receiver", queue.pop(0)):
            chunk, blobs = decode(frames)
            replies, done, failed = receiver.on_chunk(dataclasses.replace(chunk, sender="sender"),
                                                      blobs[0] if blobs else b"")
            queue += [decode(f)[0] for f in replies]
            outcome = outcome or failed
        src.write_bytes(b"x")   # rewritten after the first window went out
    assert outcome and "no longer has blob" in outcome
    assert not receiver.busy(digest) and not queue


def test_an_empty_chunk_before_the_end_fails_the_download(tmp_path):
    receiver = Incoming(lambda: str(tmp_path / "part"))
    receiver.start("w", "cd" * 32, 100)
    _, done, failed = receiver.on_chunk(Chunk(to="r", digest="cd" * 32, offset=0, total=100, sender="w"), b"")
    assert done is None and "short" in failed and not receiver.busy("cd" * 32)


def test_a_stalled_download_is_asked_for_again_then_given_up(tmp_path):
    receiver = Incoming(lambda: str(tmp_path / f"part{len(os.listdir(tmp_path))}"))
    receiver.start("sender", "cd" * 32, 100)
    restarts = [receiver.restart_stalled(1e12 + 2 * i, patience=1.0) for i in range(4)]
    assert all(len(r) == 1 and decode(r[0])[0].restart for r in restarts[:3])
    assert restarts[3] == [] and [d for d, _ in receiver.given_up()] == ["cd" * 32]
    assert not receiver.busy("cd" * 32)


def test_a_download_that_waited_out_a_broker_outage_counts_its_stalls_afresh(tmp_path):
    receiver = Incoming(lambda: str(tmp_path / f"part{len(os.listdir(tmp_path))}"))
    receiver.start("sender", "cd" * 32, 100)
    for i in range(3):
        assert len(receiver.restart_stalled(1e12 + 2 * i, patience=1.0)) == 1   # the outage
    receiver.resume(1e12 + 5)                                                 # the broker is back
    assert receiver.restart_stalled(1e12 + 5.5, patience=1.0) == []           # not stalled yet
    assert [len(receiver.restart_stalled(1e12 + 7 + 2 * i, patience=1.0)) for i in range(3)] == [1, 1, 1]
    assert receiver.busy("cd" * 32) and receiver.given_up() == []


def test_jobs_of_another_submitter_get_the_blob_when_the_fetching_submitter_leaves():
    gate = InputGate(MemoryBlobs())
    ref = (FileRef(path="big", mode=0o644, digest="ef" * 32, size=5 << 20),)
    _, [first] = gate.admit(("sub-a", 1), Job(job=1, worker="w", command="x", files=ref, client="sub-a"), [])
    assert gate.admit(("sub-b", 1), Job(job=1, worker="w", command="x", files=ref, client="sub-b"), [])[1] == []
    abandoned, restarted = gate.drop_client("sub-a")
    assert abandoned == ["ef" * 32]
    assert restarted == [Fetch("sub-b", "ef" * 32, 5 << 20)]


def test_a_failed_fetch_fails_only_the_jobs_of_the_submitter_it_was_asked_of():
    """Another submitter naming the same digest (hostile, or whose copy changed) answers
    `missing`: the jobs of a submitter that has the file wait for it from that one."""
    gate = InputGate(MemoryBlobs())
    ref = (FileRef(path="shared.h", mode=0o644, digest="ef" * 32, size=5 << 20),)
    _, [first] = gate.admit(("evil", 1), Job(job=1, worker="w", command="x", files=ref, client="evil"), [])
    assert first.client == "evil"
    assert gate.admit(("good", 7), Job(job=7, worker="w", command="x", files=ref, client="good"), [])[1] == []
    ready, failed, again = gate.fetched("ef" * 32, ok=False)
    assert ready == [] and [key for key, _ in failed] == [("evil", 1)]
    assert again == [Fetch("good", "ef" * 32, 5 << 20)] and gate.keys() == [("good", 7)]
    gate.store.blobs["ef" * 32] = b"the file"
    ready, failed, again = gate.fetched("ef" * 32, ok=True)
    assert [key for key, _, _ in ready] == [("good", 7)] and failed == [] and again == []


def test_a_fetch_that_failed_by_our_doing_fails_every_job_waiting_for_it_at_once():
    """A full disk would fail the next submitter's fetch too: no download of it again."""
    gate = InputGate(MemoryBlobs())
    ref = (FileRef(path="big", mode=0o644, digest="ef" * 32, size=2 << 30),)
    for client, job in (("a", 1), ("b", 2), ("c", 3)):
        gate.admit((client, job), Job(job=job, worker="w", command="x", files=ref, client=client), [])
    ready, failed, again = gate.fetched("ef" * 32, ok=False, theirs=False)
    assert sorted(key for key, _ in failed) == [("a", 1), ("b", 2), ("c", 3)] and again == [] and gate.keys() == []


def test_a_fetch_our_full_disk_cannot_store_is_logged_by_the_worker_once_not_only_told_the_jobs():
    import errno as errnos
    from protocol import Result, decode, encode
    from protocol.timing import Timing
    from worker.core import Send, WorkerCore
    from worker.downloads import Downloads

    class FullCache:
        dir = "/cache"

        @staticmethod
        def temp_path():
            raise OSError(errnos.ENOSPC, "No space left on device")
    lines, effects = [], []
    core = WorkerCore("w1", "h", 2, Timing(), 0.0)
    downloads = Downloads(FullCache(), core, lambda frames: None, effects.extend, log=lines.append)
    for n in (1, 2):
        ref = (FileRef(path="big", mode=0o644, digest=f"{n:02d}" * 32, size=5 << 20),)
        for fetch in [e for e in core.on_frames(1.0, encode(Job(job=n, worker="w", command="x", files=ref, client="53aa")))
                      if isinstance(e, Fetch)]:
            downloads.add(fetch)
    assert len(lines) == 1 and "No space left on device" in lines[0] and "/cache" in lines[0]
    results = [decode(e.frames)[0] for e in effects if isinstance(e, Send)]
    assert [r.status for r in results if isinstance(r, Result)] == ["error", "error"]   # each tried elsewhere


def test_a_downloaded_blob_the_store_cannot_take_is_not_left_behind(tmp_path):
    import errno as errnos
    from protocol import Chunk
    from protocol.timing import Timing
    from worker.core import WorkerCore
    from worker.downloads import Downloads
    part = tmp_path / "tmp-1-2-3"
    part.write_bytes(b"a whole blob")

    class BrokenStore:
        dir = str(tmp_path)
        temp_path = staticmethod(lambda: str(tmp_path / "unused"))

        @staticmethod
        def adopt(*args):
            raise OSError(errnos.EEXIST, "File exists")
    downloads = Downloads(BrokenStore(), WorkerCore("w1", "h", 2, Timing(), 0.0), lambda f: None, lambda e: None)
    downloads.incoming.on_chunk = lambda chunk, data: ([], ("ab" * 32, str(part)), None)
    downloads.take_chunk(Chunk(to="w", digest="ab" * 32, offset=0, total=12, sender="53aa"), [b""])
    assert not part.exists()


def test_the_inputs_a_job_waiting_for_a_fetch_has_already_are_in_use():
    gate = InputGate(MemoryBlobs())
    here = gate.store.add_bytes(b"small input")
    refs = (FileRef(path="small", mode=0o644, digest=here, size=11),
            FileRef(path="big", mode=0o644, digest="ef" * 32, size=5 << 20))
    gate.admit(("a", 1), Job(job=1, worker="w", command="x", files=refs, client="a"), [])
    assert list(gate.present()) == [here]


def test_the_cache_adopts_a_file_from_another_filesystem_by_copying(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    src = tmp_path / "made.o"
    src.write_bytes(b"object")
    digest = hashlib.sha256(b"object").hexdigest()
    real_replace = os.replace
    calls = []

    def cross_device_once(a, b, **kw):
        calls.append(a)
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(a, b, **kw)
    monkeypatch.setattr(os, "replace", cross_device_once)
    real_copy, free = cache._copy, []

    def copy(*args):   # another thread (the loop's own small stores) may place a blob meanwhile
        def other():
            if cache.placing.acquire(blocking=False):
                free.append(True)
                cache.placing.release()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return real_copy(*args)
    monkeypatch.setattr(cache, "_copy", copy)
    path = cache.adopt(str(src), digest, 6)
    assert open(path, "rb").read() == b"object" and not src.exists()
    assert free == [True]   # a big copy must not hold up the loop's own small stores


def test_an_output_equal_to_a_stored_blob_leaves_that_blob_as_it_is(tmp_path):
    """`cp input output`: adopting the output replaced the stored input, whose inode jobs about
    to stage it know it by ('left the cache before the job ran'), and two such adopts at once
    unlinked each other's file as a swapped one."""
    cache = BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    digest = cache.add_bytes(b"x" * 5000)
    stored = os.stat(cache.path(digest))
    for n in range(2):   # a moved output, then a copied one (two links: it is copied)
        out = tmp_path / f"out{n}"
        out.write_bytes(b"x" * 5000)
        if n:
            os.link(out, tmp_path / "other-name")
        assert cache.adopt(str(out), digest, 5000) == cache.path(digest)
        assert os.stat(cache.path(digest)).st_ino == stored.st_ino and cache.has(digest, 5000)


def test_one_blob_named_by_many_inputs_is_stored_once_per_job():
    class Counting(MemoryBlobs):
        adds = 0

        def add_bytes(self, data, digest=None):
            Counting.adds += 1
            return super().add_bytes(data, digest)
    gate = InputGate(Counting())
    blob = b"x" * 4096
    digest = hashlib.sha256(blob).hexdigest()
    refs = tuple(FileRef(path=f"f{i}", mode=0o644, blob=0, digest=digest) for i in range(3000))
    files, fetches = gate.admit(("s", 1), Job(job=1, worker="w", command="true", files=refs), [blob])
    assert len(files) == 3000 and fetches == [] and Counting.adds == 1


def test_the_cache_survives_a_restart_and_forgets_half_written_downloads(tmp_path):
    cache = BlobCache(str(tmp_path / "c"), limit=1 << 30)
    digest = cache.add_bytes(b"kept")
    open(cache.temp_path(), "wb").write(b"half")
    cache.close()   # as the worker that used it exits
    again = BlobCache(str(tmp_path / "c"), limit=1 << 30)
    assert again.has(digest) and open(again.use(digest), "rb").read() == b"kept"
    assert [n for n in os.listdir(tmp_path / "c") if n.startswith("tmp-")] == []


def test_a_cache_directory_shared_with_other_things_loses_none_of_them(tmp_path):
    # `--cache-dir ~/.cache`: pip's and fontconfig's files, and a tmp-* directory, stay.
    home = tmp_path / "home-cache"
    for path in ("pip/selfcheck.json", "fontconfig/fonts.cache", "README", "tmp-build/x", "ab/notes.txt"):
        (home / path).parent.mkdir(parents=True, exist_ok=True)
        (home / path).write_text("theirs")
    cache = BlobCache(str(home), limit=1 << 30)
    digest = cache.add_bytes(b"ours")
    cache.close()
    again = BlobCache(str(home), limit=1 << 30)
    assert again.has(digest)
    for path in ("pip/selfcheck.json", "fontconfig/fonts.cache", "README", "tmp-build/x", "ab/notes.txt"):
        assert (home / path).read_text() == "theirs", path


def test_a_blob_deleted_or_cut_short_behind_the_cache_is_forgotten_and_taken_again(tmp_path):
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    data = b"x" * 5000
    digest = cache.add_bytes(data)
    os.unlink(cache.path(digest))                       # deleted behind our back
    assert not cache.has(digest) and cache.total == 0
    assert cache.add_bytes(data) == digest and open(cache.path(digest), "rb").read() == data
    os.chmod(cache.path(digest), 0o644)
    with open(cache.path(digest), "r+b") as fh:         # cut short, before a restart even
        fh.truncate(10)
    cache.close()
    again = BlobCache(str(tmp_path / "cache"), 1 << 30)
    assert not again.has(digest, size=5000)             # the sender's size says it is not whole
    assert again.add_bytes(data) == digest and again.has(digest, size=5000)   # fetched: replaced
    assert open(again.path(digest), "rb").read() == data


def test_a_job_naming_a_whole_blob_with_a_wrong_size_does_not_destroy_it(tmp_path):
    # A hostile JOB (or a confused one) must not fail other submitters' jobs that need it.
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    digest = cache.add_bytes(b"x" * 5000)
    assert not cache.has(digest, size=1)
    assert cache.has(digest, size=5000) and cache.has(digest)
    cache.close()
    again = BlobCache(str(tmp_path / "cache"), 1 << 30)   # found at start
    assert not again.has(digest, size=1) and again.has(digest, size=5000)


def test_a_blob_rewritten_in_place_with_its_mtime_put_back_is_forgotten_and_taken_again(tmp_path):
    # An action running as the worker's user can reach the store; ctime it cannot set back.
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    data = b"good" * 2000
    digest = cache.add_bytes(data)
    assert cache.has(digest, size=len(data))
    path = cache.path(digest)
    before = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.write(b"Z" * len(data))                     # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))   # touch -r
    assert not cache.has(digest, size=len(data)) and not os.path.exists(path)
    assert cache.add_bytes(data) == digest and open(path, "rb").read() == data


def test_a_nearly_full_disk_makes_the_cache_give_back_its_oldest_blobs_recent_or_not(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    old, new = cache.add_bytes(b"o" * 4096), cache.add_bytes(b"n" * 4096)
    minute_ago = time.time() - 60                        # both used within RECENT, not in use now
    cache.index[old] = (4096, minute_ago - 1, cache.index[old][2])
    cache.index[new] = (4096, minute_ago, cache.index[new][2])
    busy = cache.add_bytes(b"b" * 4096)                  # in use: a queued job's input, say
    real = os.statvfs(cache.dir)
    free = {"bytes": 0}

    class Disk:   # 100 MiB, of which `free` bytes free: the reserve is 5 MiB
        f_frsize, f_blocks, f_flag, f_files, f_favail = 4096, 25600, real.f_flag, 0, 0   # no inode count

        @property
        def f_bavail(self):
            return free["bytes"] // 4096
    monkeypatch.setattr(os, "statvfs", lambda path: Disk())
    free["bytes"] = (5 << 20) - 4096                     # 4 KiB short of the reserve
    assert cache.keep_free(100.0) == 4096
    assert old not in cache.index and new in cache.index   # (has() would count as a use)
    assert cache.keep_free(100.5) == 0                   # once a second at most
    free["bytes"] = 1 << 20                              # far short: all but what is in use goes
    assert cache.keep_free(102.0) == 4096 and busy in cache.index and new not in cache.index
    free["bytes"] = 1 << 30
    assert cache.keep_free(104.0) == 0 and cache.has(busy)
    queued = cache.add_bytes(b"q" * 4096)                # a queued job's input, stored long ago,
    cache.index[queued] = (4096, minute_ago, cache.index[queued][2])
    assert cache.has(queued)                             # checked when the job was admitted:
    free["bytes"] = 1 << 20
    assert cache.keep_free(106.0) == 0 and cache.has(queued)   # in use, so spared


def test_tiny_blobs_count_a_block_each_so_thousands_of_them_reach_the_limit(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), limit=40 * 4096)
    digests = [cache.add_bytes(b"%d" % i) for i in range(100)]
    assert len(cache.index) == 100   # all used just now: kept for RECENT
    monkeypatch.setattr(time, "time", lambda real=time.time: real() + 400)
    cache.keep_free(1e9)             # the tick: aged past RECENT, the oldest go, down to 90% of the limit
    assert len(cache.index) == 36 and digests[-1] in cache.index and digests[0] not in cache.index
    assert not os.path.exists(cache.path(digests[0])) and os.path.exists(cache.path(digests[-1]))


def test_a_clock_stepped_back_does_not_stop_eviction_for_the_time_it_went_back(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), limit=10 * 4096)
    for i in range(20):
        cache.add_bytes(b"%d" % i)   # all recent: kept, and nothing can go before RECENT from now
    assert len(cache.index) == 20 and cache.evictable > time.time()
    for d in list(cache.index):      # used long enough before the clock, stepped back an hour, reads
        cache.index[d] = (cache.index[d][0], time.time() - 3600 - 400, cache.index[d][2])
    monkeypatch.setattr(time, "time", lambda real=time.time: real() - 3600)
    cache.keep_free(1e9)
    assert len(cache.index) == 9


def test_the_inputs_of_queued_jobs_are_in_use_however_long_they_wait(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), limit=2 * 4096)
    queued, *others = [cache.add_bytes(b"%d" % i) for i in range(4)]
    monkeypatch.setattr(time, "time", lambda real=time.time: real() + 400)   # all past RECENT
    cache.keep_free(1e9, in_use=[queued])
    assert queued in cache.index and cache.has(queued) and len(cache.index) == 1


def test_a_store_left_over_its_limit_is_cut_down_when_a_worker_starts_on_it(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "c"), limit=1 << 30)
    for i in range(30):
        cache.add_bytes(b"x" * 5000 + b"%d" % i)
    cache.close()
    monkeypatch.setattr(time, "time", lambda real=time.time: real() + 400)   # their mtimes are old now
    again = BlobCache(str(tmp_path / "c"), limit=10 * 8192)
    assert len(again.index) == 9 and again.total == 9 * 8192   # 90% of the limit: room for a few


def test_a_disk_short_of_inodes_makes_the_cache_give_back_blobs(tmp_path, monkeypatch):
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    blobs = [cache.add_bytes(b"%d" % i) for i in range(5)]
    for d in blobs:   # used a minute ago: not in use
        cache.index[d] = (cache.index[d][0], time.time() - 60, cache.index[d][2])
    real = os.statvfs(cache.dir)

    class Disk:   # plenty of bytes; 1000 inodes, 47 free: 3 short of the 5% reserve
        f_frsize, f_blocks, f_bavail, f_flag, f_files, f_favail = 4096, 1 << 20, 1 << 19, real.f_flag, 1000, 47
    monkeypatch.setattr(os, "statvfs", lambda path: Disk())
    cache.keep_free(10.0)
    assert [d in cache.index for d in blobs] == [False, False, False, True, True]


def test_a_second_worker_cannot_take_a_cache_directory_in_use():
    import tempfile
    from worker.cache import CacheBusy
    with tempfile.TemporaryDirectory() as d:
        first = BlobCache(d, 1 << 20)
        with pytest.raises(CacheBusy, match="in use by another rake-worker"):
            BlobCache(d, 1 << 20)
        first.close()
        BlobCache(d, 1 << 20).close()   # free again once the first is gone


def test_a_sender_that_gives_no_size_does_not_make_the_cache_drop_a_good_blob(tmp_path):
    cache = BlobCache(str(tmp_path / "cache"), 1 << 30)
    digest = cache.add_bytes(b"y" * 300)
    assert cache.has(digest, size=0) and os.path.exists(cache.path(digest))


def test_an_action_waiting_on_a_download_shared_with_a_lost_worker_fetches_it_from_its_own(tmp_path):
    # Two actions on two workers made the same big output; only one download runs at a time.
    from protocol import FileRef, Result, decode
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic = FileTraffic(str(tmp_path))
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1, None)
    ref = lambda name: FileRef(path=name, mode=0o644, digest="ab" * 32, size=5 << 20)   # noqa: E731
    ends = [Deliver(i, Result(job=i + 1, client="c", status="exited", worker=w, outputs=(ref(f"out{i}"),)), [], w)
            for i, w in enumerate(("wa", "wb"))]
    first, _ = deliveries.start(ends[0], Action("make out0", True, 2))
    second, _ = deliveries.start(ends[1], Action("make out1", True, 3))
    assert [decode(f)[0].to for f in first] == ["wa"] and second == []
    settled = deliveries.worker_gone("wa")
    assert (settled.redo, settled.failed) == ([(0, "wa", "")], [])
    assert [(decode(f)[0].to, decode(f)[0].digest) for f in settled.frames] == [("wb", "ab" * 32)]
    traffic.close()


def test_a_failed_action_whose_big_output_is_lost_is_reported_failed_with_its_output_not_rerun(tmp_path):
    from protocol import FileRef, Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic, err = FileTraffic(str(tmp_path)), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=err), OutputWriter(str(tmp_path)), 1, None)
    ref = FileRef(path="log.bin", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=3, worker="wa", outputs=(ref,), stderr=0)
    deliveries.start(Deliver(0, result, [b"compiler says no\n"], "wa"), Action("make log", True, 2))
    assert deliveries.worker_gone("wa") == ([], [], [0], [])   # (frames, redo, failed, done)
    text = err.getvalue().decode()
    assert "FAILED: [code=3] make log" in text and "compiler says no" in text
    assert "output 'log.bin' lost: worker wa was lost" in text
    assert not traffic.incoming.busy("cd" * 32)
    traffic.close()


def test_a_succeeded_action_whose_big_output_cannot_be_written_here_names_it_and_shows_its_output(tmp_path):
    from protocol import Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic, out, err = FileTraffic(str(tmp_path)), io.BytesIO(), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=out, err=err), OutputWriter(str(tmp_path)), 1, None)
    ref = FileRef(path="a.bin", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=0, worker="wa", outputs=(ref,), stdout=0, stderr=1)
    deliveries.start(Deliver(0, result, [b"made\n", b"to-stderr\n"], "wa"), Action("make a", True, 2))
    full = os.open("/dev/full", os.O_WRONLY)   # writing it fails here as on a full disk
    os.dup2(full, traffic.incoming.downloads["cd" * 32].fd)
    os.close(full)
    settled = deliveries.on_chunk(Chunk(to="c", digest="cd" * 32, offset=0, total=5 << 20, sender="wa"), [b"x"])
    assert settled.failed == [0]
    text = err.getvalue().decode()
    assert out.getvalue() == b"made\n" and "to-stderr" in text
    assert f"output 'a.bin' lost: cannot write it (downloading into {tmp_path}): No space left on device" in text
    assert not list(tmp_path.glob("a.bin"))
    traffic.close()


def test_a_holder_that_lost_a_shared_blob_fails_only_its_own_action_the_other_fetches_from_its_worker(tmp_path):
    from protocol import Chunk, FileRef, Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic = FileTraffic(str(tmp_path))
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1, None)
    ref = lambda name: FileRef(path=name, mode=0o644, digest="ab" * 32, size=5 << 20)   # noqa: E731
    for i, w in enumerate(("wa", "wb")):
        deliveries.start(Deliver(i, Result(job=i + 1, client="c", status="exited", worker=w, outputs=(ref(f"o{i}"),)),
                                 [], w), Action(f"make o{i}", True, 2 + i))
    missing = Chunk(to="c", digest="ab" * 32, offset=0, total=0, sender="wa", missing=True)
    settled = deliveries.on_chunk(missing, [])
    assert [(i, w) for i, w, _ in settled.redo] == [(0, "wa")] and settled.failed == []   # ran again
    assert [(decode(f)[0].to, decode(f)[0].digest) for f in settled.frames] == [("wb", "ab" * 32)]
    assert list(deliveries.pending) == [1]
    traffic.close()


def _inline_deliveries(tmp_path, err):
    from submitter.delivery import Deliveries
    from submitter.files import OutputWriter
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic = FileTraffic(str(tmp_path))
    return traffic, Deliveries(traffic, Reporter(out=io.BytesIO(), err=err), OutputWriter(str(tmp_path)), 1, None)


def _inline_result(names):
    import hashlib
    from protocol import Result
    from submitter.effects import Deliver
    refs = tuple(FileRef(path=n, mode=0o644, blob=i, digest=hashlib.sha256(n.encode()).hexdigest(), size=len(n))
                 for i, n in enumerate(names))
    return Deliver(0, Result(job=1, client="c", status="exited", worker="wa", outputs=refs), [n.encode() for n in names], "wa")


def test_an_interrupt_while_outputs_are_written_leaves_none_of_them_and_no_temporary_file(tmp_path, monkeypatch):
    import submitter.files
    from submitter.interrupts import Interrupted
    from submitter.rakefile import Action
    (tmp_path / "b.txt").write_text("old")
    real, calls = submitter.files._write_new, []

    def interrupted_on_the_third(dir_fd, name, data, mode):
        calls.append(name)
        real(dir_fd, name, data[:1], mode)   # half of it written, then Ctrl-C
        if len(calls) == 3:
            raise Interrupted(130)
        real(dir_fd, name, data, mode)
    monkeypatch.setattr(submitter.files, "_write_new", interrupted_on_the_third)
    err = io.BytesIO()
    traffic, deliveries = _inline_deliveries(tmp_path, err)
    with pytest.raises(Interrupted):
        deliveries.start(_inline_result(["a.txt", "b.txt", "sub/c.txt"]), Action("make", True, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"] and (tmp_path / "b.txt").read_text() == "old"
    text = err.getvalue().decode()   # it ended, and its end is said, as for a download cut short
    assert "FAILED: [outputs lost] make" in text and "interrupted before its outputs were written" in text
    traffic.close()


def test_a_rename_that_fails_after_others_names_the_outputs_that_were_written(tmp_path, monkeypatch):
    import submitter.files
    from submitter.rakefile import Action
    (tmp_path / "m.txt").write_text("keep")
    real = submitter.files.OutputWriter.commit

    def a_directory_appears_at_m(self):   # as an immutable file or a mount point refuses the rename
        os.unlink(tmp_path / "m.txt")
        os.makedirs(tmp_path / "m.txt" / "full")
        return real(self)
    monkeypatch.setattr(submitter.files.OutputWriter, "commit", a_directory_appears_at_m)
    err = io.BytesIO()
    traffic, deliveries = _inline_deliveries(tmp_path, err)
    deliveries.start(_inline_result(["a.txt", "m.txt", "z.txt"]), Action("make", True, 2))
    text = err.getvalue().decode()
    assert "cannot write 'm.txt'" in text and "1 of its 3 outputs were written before that: 'a.txt'" in text
    assert "none of its outputs were written" not in text
    assert (tmp_path / "a.txt").read_text() == "a.txt" and not (tmp_path / "z.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rake-")]
    traffic.close()


def test_downloads_wait_in_the_temp_dir_when_the_project_root_is_read_only(tmp_path, monkeypatch):
    import errno
    import tempfile
    import submitter.traffic
    from submitter.traffic import FileTraffic
    real = submitter.traffic.locked_tempdir

    def read_only_root(prefix, lock, base=None):
        if base == str(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(prefix, lock, base)
    monkeypatch.setattr(submitter.traffic, "locked_tempdir", read_only_root)
    traffic = FileTraffic(str(tmp_path))
    try:
        part = traffic._temp_path()
        assert os.path.dirname(os.path.dirname(part)) == tempfile.gettempdir() == traffic.where()
    finally:
        traffic.close()


def test_a_delivery_of_many_outputs_or_of_a_long_copy_lets_the_loop_keep_its_heartbeat(tmp_path, monkeypatch):
    """Tens of thousands of outputs, or one copied across filesystems, take seconds to
    write: without pulses the broker heard nothing from us for that long, dropped us and
    killed our other running actions."""
    import submitter.files
    from submitter.delivery import Deliveries
    from submitter.files import OutputWriter, copy_into
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic, pulses = FileTraffic(str(tmp_path)), []
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1,
                            None, pulse=lambda: pulses.append(1))
    assert deliveries.writer.pulse is deliveries.pulse   # big outputs copied across filesystems
    (tmp_path / "shared").write_bytes(b"y" * 10)          # and copies of one download pulse too
    deliveries.needs["ab"], deliveries.ready["ab"] = 2, str(tmp_path / "shared")
    monkeypatch.setattr(traffic, "copy_of", lambda tmp, pulse=None: pulses.append(pulse) or tmp)
    deliveries._take("ab")
    assert pulses.pop() is deliveries.pulse
    names = [f"out/{i}" for i in range(300)]
    assert deliveries.start(_inline_result(names), Action("make", True, 2)) == ([], True)
    assert len(pulses) >= len(names) and len(list((tmp_path / "out").iterdir())) == len(names)
    monkeypatch.setattr(submitter.files, "COPY_SLICE", 1000)
    (tmp_path / "big").write_bytes(b"x" * 10_000)
    pulses.clear()
    with open(tmp_path / "big", "rb") as src, open(tmp_path / "copy", "wb") as dst:
        copy_into(src.fileno(), dst.fileno(), lambda: pulses.append(1))
    assert len(pulses) == 10 and (tmp_path / "copy").read_bytes() == b"x" * 10_000
    traffic.close()


def test_a_pulse_sends_a_heartbeat_when_one_is_due_and_excuses_the_broker_meanwhile():
    from submitter.liveness import BrokerLiveness
    from types import SimpleNamespace
    sent = []
    loop = SimpleNamespace(last_heard=0.0, last_sent=0.0, timing=SimpleNamespace(heartbeat=1e-9),
                           link=SimpleNamespace(pack=lambda msg: msg), _send=sent.append)
    BrokerLiveness._pulse(loop)
    assert [type(m).__name__ for m in sent] == ["Heartbeat"] and loop.last_heard > 0


def test_a_worker_missing_one_blob_loses_only_the_actions_waiting_for_it(tmp_path):
    """It evicted one output fetched late: its other actions' downloads are unharmed."""
    import hashlib
    from protocol import Result
    from submitter.effects import Deliver
    from submitter.rakefile import Action
    traffic, deliveries = _inline_deliveries(tmp_path, io.BytesIO())
    d1, d2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    for index, (name, digest) in enumerate((("big1", d1), ("big2", d2))):
        r = Result(job=index + 1, client="c", status="exited", worker="wa",
                   outputs=(FileRef(path=name, mode=0o644, digest=digest, size=5 << 20),))
        assert deliveries.start(Deliver(index, r, [], "wa"), Action(f"make {name}", True, 2 + index))[1] is None
    settled = deliveries.on_chunk(Chunk(to="c", digest=d1, offset=0, total=0, sender="wa", missing=True), [])
    assert [i for i, _, _ in settled.redo] == [0] and list(deliveries.pending) == [1]
    assert traffic.incoming.busy(d2)
    traffic.close()


def test_an_action_whose_outputs_were_still_coming_when_the_run_ended_is_reported_with_its_output(tmp_path):
    """The broker given up on (or Ctrl-C) while a failed action's big output downloaded: its
    RESULT was in hand (and acknowledged), yet it was never reported."""
    from protocol import Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic, out, err = FileTraffic(str(tmp_path)), io.BytesIO(), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=out, err=err), OutputWriter(str(tmp_path)), 1, None,
                            name_of={"57ab": "w1"}.get)
    ref = FileRef(path="big", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=1, worker="57ab", outputs=(ref,), stdout=0)
    deliveries.start(Deliver(0, result, [b"printed-by-action\n"], "w1"), Action("make-big", True, 2))
    deliveries.abandon_all("the broker went silent")
    text = err.getvalue().decode()
    assert out.getvalue() == b"printed-by-action\n" and "FAILED: [code=1] make-big" in text
    assert "output 'big' lost: the broker went silent" in text and not deliveries.pending
    assert not traffic.incoming.busy("cd" * 32)
    again = Result(job=2, client="c", status="exited", code=1, worker="57ab", outputs=(ref,))
    deliveries.start(Deliver(1, again, [], "w1"), Action("make-big", True, 3))
    deliveries.worker_gone("57ab")
    assert "output 'big' lost: worker w1 was lost" in err.getvalue().decode()
    traffic.close()


def test_a_fetched_blob_replaces_one_cut_short_and_leaves_no_temporary_file(tmp_path):
    cache = BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    data = b"y" * 3000
    digest = cache.add_bytes(data)
    os.chmod(cache.path(digest), 0o644)
    os.truncate(cache.path(digest), 10)   # cut short while the worker was down
    tmp = cache.temp_path()
    with open(tmp, "wb") as fh:
        fh.write(data)
    cache.adopt(tmp, digest, len(data))
    assert open(cache.path(digest), "rb").read() == data and cache.has(digest, len(data))
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith("tmp-")]
    again = cache.temp_path()   # the same blob fetched once more: stored whole already
    with open(again, "wb") as fh:
        fh.write(data)
    cache.adopt(again, digest, len(data))
    assert not os.path.exists(again)


def test_a_store_emptied_by_a_tmp_cleaner_takes_blobs_again_without_a_restart(tmp_path):
    import shutil
    cache = BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    cache.add_bytes(b"first")
    shutil.rmtree(tmp_path / "cache")   # what a cleaner of /tmp does to an idle worker's store
    digest = cache.add_bytes(b"first")
    assert cache.has(digest, 5) and (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    from worker.cache import CacheBusy
    with pytest.raises(CacheBusy):   # still ours: no second worker may take it now
        BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    cache.close()


@pytest.mark.timeout(60)
def test_eviction_and_an_equal_output_stored_at_once_never_leave_an_indexed_blob_without_its_file(tmp_path):
    """The loop evicts (a check, then an unlink) while a pool thread adopts an equal output:
    the unlink took the blob just placed, and its output was lost (5% of rounds)."""
    cache = BlobCache(str(tmp_path / "cache"), limit=1 << 30)
    broken = 0
    for n in range(300):
        data = b"%d" % n * 700
        digest = cache.add_bytes(data)
        with cache.lock:
            cache.index[digest] = (cache.index[digest][0], 0.0, cache.index[digest][2])
        cache.limit, cache.evictable = 0, 0.0
        out = tmp_path / "out"
        out.write_bytes(data)
        start = threading.Barrier(2)

        def adopt():
            start.wait()
            with contextlib.suppress(OSError):
                cache.adopt(str(out), digest, len(data))

        def evict():
            start.wait()
            cache._evict()
        threads = [threading.Thread(target=adopt), threading.Thread(target=evict)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cache.limit = 1 << 30
        broken += digest in cache.index and not os.path.exists(cache.path(digest))
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
    assert broken == 0
