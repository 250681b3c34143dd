"""When a worker's blob store (worker/cache.py) gives blobs back: past its size limit or
blob count, and while its disk is short of space or inodes. Called under none of its locks."""

from __future__ import annotations

import contextlib
import os
import time

RECENT = 300.0   # seconds: a blob used this recently is not evicted for size (a job may need it)
RESERVE_SHARE, RESERVE_MAX = 0.05, 256 << 20   # free space kept on the store's disk (recent blobs go),
RESERVE_FILES = 10_000                         # and free inodes (at most 5% of them),
IN_USE = 30.0                                  # but not those used in the last 30 s
BLOCK = 4096          # the least a blob takes on disk, with an inode, however small it is
MAX_BLOBS = 100_000   # however small: each is an inode, and a few hundred bytes of index
LOW = 0.9             # eviction goes down to this share of the limit and of MAX_BLOBS


def cost(size: int) -> int:
    """What a blob counts against the limit: its size in whole blocks, one at least. Counted
    by their bytes, thousands of tiny outputs would never reach it while filling the disk."""
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def evict(cache) -> None:
    """Once over the limit or MAX_BLOBS: the least recently used blobs down to LOW of both
    (one sort serves many stores), but never one used in the last RECENT seconds (a job may
    need it), so the limit can be exceeded for that long; until the oldest kept blob ages,
    there is nothing to sort again (unless the clock went back)."""
    now = time.time()
    if (cache.total <= cache.limit and len(cache.index) <= MAX_BLOBS) or now < cache.evictable <= now + RECENT:
        return
    gone = []
    with cache.lock:
        for digest, (size, used, mark) in sorted(cache.index.items(), key=lambda kv: kv[1][1]):
            if cache.total <= LOW * cache.limit and len(cache.index) <= LOW * MAX_BLOBS:
                break
            if used > now - RECENT:
                cache.evictable = used + RECENT
                break
            del cache.index[digest]
            cache.total -= cost(size)
            gone.append((digest, mark))
    _unlink(cache, gone)


def keep_free(cache) -> int:
    """Evict the least recently used blobs, recent ones too (not those in use: used in the
    last IN_USE seconds), while the store's disk has less free space than a reserve (5%, at
    most 256 MiB) or fewer free inodes (5%, at most RESERVE_FILES): a full disk fails every
    job, an evicted blob is only fetched again. The bytes freed."""
    try:
        st = os.statvfs(cache.dir)
    except OSError:
        return 0
    short = min(RESERVE_MAX, st.f_blocks * st.f_frsize * RESERVE_SHARE) - st.f_bavail * st.f_frsize
    # 0 inodes in all: a filesystem that does not count them (btrfs)
    few = min(RESERVE_FILES, st.f_files * RESERVE_SHARE) - st.f_favail if st.f_files else 0
    if short <= 0 and few <= 0:   # the common case: no sort of the whole index every second
        return 0
    freed, gone, cutoff = 0, [], time.time() - IN_USE
    with cache.lock:
        for digest, (size, used, mark) in sorted(cache.index.items(), key=lambda kv: kv[1][1]):
            if (freed >= short and len(gone) >= few) or used > cutoff:
                break   # enough; or the rest are in use: a job's inputs, outputs being fetched
            del cache.index[digest]
            cache.total -= cost(size)
            freed += cost(size)
            gone.append((digest, mark))
    _unlink(cache, gone)
    return freed


def _unlink(cache, gone: list) -> None:
    """Remove evicted blobs' files, unless stored again meanwhile (by a job thread)."""
    for digest, mark in gone:
        with cache.placing, contextlib.suppress(OSError):   # not between an adopt's place and note
            if cache.mark_of(digest) == mark and digest not in cache.index:
                os.unlink(cache.path(digest))
