"""The blob cache: adopting, sharing and repairing stored blobs."""

from __future__ import annotations

import errno
import hashlib
import os
import threading

import pytest

from protocol import FileRef, Job
from worker.cache import BlobCache
from worker.inputs import InputGate, MemoryBlobs


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
