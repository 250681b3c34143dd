"""The blobs a worker fetches from submitters: at most MAX_FETCHES at once, the rest queued."""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from typing import Callable

from rake_common.logsetup import warn
from worker.inputs import Fetch
from worker.incoming import Incoming

MAX_FETCHES = 64   # each holds a file open


class Downloads:
    """Starts the core's fetches, feeds them CHUNKs and reports how each ends to the core.
    `send_each` sends frames to the broker; `perform` carries out what the core answers."""

    def __init__(self, cache, core, send_each: Callable[[list], None], perform: Callable[[list], None],
                 log: Callable[[str], None] = lambda s: None):
        self.cache, self.core, self.log = cache, core, log
        self.send_each, self.perform = send_each, perform
        self.said: dict[str, float] = {}   # our own storage trouble -> when last logged
        self.incoming = Incoming(cache.temp_path)
        self.queue: deque[Fetch] = deque()
        self.starting = False   # start() is running: it is not re-entered

    def add(self, fetch: Fetch) -> None:
        self.queue.append(fetch)
        self.start()

    def abandon(self, digest: str) -> None:
        self.incoming.abandon(digest)

    def tick(self, now: float) -> None:
        """Ask again where a download stalled; give up on those that stalled too often."""
        if self.incoming.downloads or self.queue:
            self.send_each(self.incoming.restart_stalled(now, self.core.timing.expiry * 3))
            for digest, why in self.incoming.given_up():
                self.perform(self.core.on_fetched(now, digest, False, why))
            self.start()

    def start(self) -> None:
        """Start queued fetches while fewer than MAX_FETCHES run. Not re-entered: a fetch
        queued meanwhile (a failure's restart from another submitter) is taken by this loop."""
        if self.starting:
            return
        self.starting = True
        try:
            while self.queue and len(self.incoming.downloads) < MAX_FETCHES:
                fetch = self.queue.popleft()
                # Gone stale while queued: its submitter left, another one's was started instead.
                if self.incoming.busy(fetch.digest) or self.core.gate.fetching.get(fetch.digest) != fetch:
                    continue
                try:
                    self.send_each(self.incoming.start(fetch.client, fetch.digest, fetch.size))
                except OSError as e:   # cache unwritable, out of descriptors: these jobs go elsewhere
                    self.perform(self.core.on_fetched(time.monotonic(), fetch.digest, False,
                                                      self._ours(e), theirs=False))
        finally:
            self.starting = False

    def refetch(self, now: float) -> None:
        """The broker forgot us: ask again for every download (its chunks went nowhere),
        and count stalls as if one window were left (a holder not registered again yet
        misses this WANT; then the stall check asks once more)."""
        self.incoming.resume(now, 2 * self.core.timing.expiry)
        self.send_each(self.incoming.ask_again(None))

    def take_chunk(self, chunk, blobs) -> None:
        now = time.monotonic()
        try:
            frames, done, failed = self.incoming.on_chunk(chunk, blobs[0] if blobs else b"")
            self.send_each(frames)
            if done is not None:
                try:
                    self.cache.adopt(done[1], done[0], os.stat(done[1]).st_size)
                except OSError:   # the whole blob, downloaded: not left behind as tmp-…
                    with contextlib.suppress(OSError):
                        os.unlink(done[1])
                    raise
                self.perform(self.core.on_fetched(now, done[0], True))
            elif failed is not None:
                self.perform(self.core.on_fetched(now, chunk.digest, False, failed))
        except OSError as e:   # our disk is full: the jobs waiting for it go elsewhere
            why = self._ours(e)
            for digest in {*self.incoming.fail_peer(chunk.sender), chunk.digest}:
                self.perform(self.core.on_fetched(now, digest, False, why, theirs=False))
        self.start()

    def _ours(self, e: OSError) -> str:
        """The jobs' reason for our own storage trouble; logged here too (once a minute), as
        only their submitters would hear of it otherwise."""
        why = f"cannot store it: {e.strerror or e}"
        if time.monotonic() - self.said.get(why, -1e9) > 60:
            self.said[why] = time.monotonic()
            warn(self.log, f"a fetched input {why} (in {self.cache.dir}): its jobs go to other workers")
        return why
