"""Downloads and the input gate: transfers arrive whole, wait their turn, stall, fail."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from protocol import Chunk, FileRef, Job, decode
from worker.inputs import Fetch, InputGate, MemoryBlobs
from worker.incoming import Incoming
from worker.transfer import WINDOW, Outgoing


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
