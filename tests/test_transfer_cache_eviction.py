"""The blob cache giving back blobs: disk and inode limits, clocks, blobs in use."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from worker.cache import BlobCache


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
