"""Moving big blobs as chunks with credit-based flow control (the ZeroMQ guide's pattern):
the holder's side here, the receiver's in worker/incoming.py.

Used on both sides: a worker fetching inputs from a submitter and serving outputs to it, a
submitter serving inputs and fetching outputs. The receiver grants credit (`Want.upto`) one
window ahead of what it has written, so no process in between holds more than a window.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from protocol import Chunk, Want, encode

CHUNK = 1 << 20
WINDOW = 8 * CHUNK
MAX_RESTARTS = 3
RESTARTS_PER_WINDOW = MAX_RESTARTS + 1   # of one (peer, blob) a holder serves


STREAM_IDLE = 600.0   # seconds: a receiver silent this long has gone; forget its stream
FORGET_EVERY = 1.0    # seconds between looks for idle streams
PINNED_FOR = 3600.0   # seconds a big output a result named is kept from eviction, unfetched


@dataclass
class _Stream:
    path: str
    total: int
    next: int = 0
    last: float = field(default_factory=time.monotonic)


class Outgoing:
    """Serve the bytes of blobs we hold to peers that Want them, within their credit.

    `window` (the liveness window) paces restarts: a real receiver restarts a stream only
    after it stalled that long, or once it has it all (corrupted); one that restarts sooner
    would have each restart send a fresh window, which it need not read, into the broker."""

    def __init__(self, locate: Callable[[str], str | None], window: float = 0.0):
        self.locate = locate           # digest -> a file holding it, or None
        self.window = window
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.opened: dict[tuple[str, str], list[float]] = {}   # when each stream was (re)started lately
        self.expected: dict[str, float] = {}   # digest -> until when a fetch of it is awaited
        self.pinned: dict[str, float] = {}     # digest -> until when it is kept from eviction (held)
        self.next_forget = float("-inf")   # see _forget_idle
        self.last_want = float("-inf")   # a receiver fetching a few at a time asks on for the rest

    def expect(self, digests, now: float) -> None:
        """Results naming these blobs went out: their fetches should come (see awaited)."""
        for digest in digests:
            self.expected[digest] = now + self.window
            self.pinned[digest] = now + PINNED_FOR
        if len(self.expected) > 256:   # most are fetched and gone; some never are
            self.awaited(now)

    def held(self, now: float) -> list[str]:
        """Blobs results named that have not all gone out yet: the store must not evict them
        (a submitter fetches a few at a time; a slow link can take longer than RECENT)."""
        self.pinned = {d: t for d, t in self.pinned.items() if t > now}
        return list(self.pinned)

    def awaited(self, now: float) -> bool:
        """Whether a blob a result named is still being fetched, or should be soon: a
        draining worker stays for it (it leaves within a window of the last WANT)."""
        self.expected = {d: t for d, t in self.expected.items() if t > now}
        return bool(self.expected) or now - self.last_want < self.window

    def on_want(self, peer: str, want: Want) -> list[list]:
        now = time.monotonic()
        self._forget_idle(now)
        key = (peer, want.digest)
        stream = self.streams.get(key)
        if stream is None and not want.restart:
            return []   # more credit for a transfer already complete: nothing more to send
        if want.restart and self._too_soon(key, stream, now):
            return []   # not a stall or a new fetch: a peer asking for window after window
        self.last_want = now   # a submitter downloads 4 at a time: the others come after these
        if want.digest in self.expected:
            self.expected[want.digest] = now + self.window
        try:
            return self._send_within(peer, want, key, stream)
        except OSError:   # gone or replaced since it was announced: the receiver fetches elsewhere
            self.streams.pop(key, None)
            return [encode(Chunk(to=peer, digest=want.digest, offset=0, total=0, missing=True))]

    def _send_within(self, peer: str, want: Want, key, stream) -> list[list]:
        path = self.locate(want.digest)   # each time: a worker's store counts it as in use
        if path is None:   # gone, or changed since (a submitter's file rewritten mid-fetch)
            raise FileNotFoundError(want.digest)
        if want.restart:
            stream = self.streams[key] = _Stream(path, os.stat(path).st_size)
            self.opened.setdefault(key, []).append(time.monotonic())
        out = []
        with open(stream.path, "rb", buffering=0) as fh:
            # Never more than a window per WANT, whatever credit a peer claims.
            limit = min(want.upto, stream.total, stream.next + WINDOW)
            while stream.next < limit or (stream.total == 0 and not out):
                data = os.pread(fh.fileno(), min(CHUNK, stream.total - stream.next), stream.next)
                if not data and stream.next < stream.total:   # cut short since: not that blob
                    raise FileNotFoundError(want.digest)
                out.append(encode(Chunk(to=peer, digest=want.digest, offset=stream.next,
                                        total=stream.total), [data]))
                stream.next += len(data)
                if not data:
                    break
        stream.last = time.monotonic()
        if stream.next >= stream.total:
            del self.streams[key]
            self.expected.pop(want.digest, None)   # all of it has gone out
            self.pinned.pop(want.digest, None)
        return out

    def _forget_idle(self, now: float) -> None:
        # Once a second, not on every WANT: an action's 20,000 small inputs are 20,000 WANTs,
        # and walking every stream for each made the fetches quadratic (9 of 25 s).
        if now < self.next_forget:
            return
        self.next_forget = now + FORGET_EVERY
        for key in [k for k, s in self.streams.items() if now - s.last > STREAM_IDLE]:
            del self.streams[key]
        if len(self.opened) > 1024:   # only restarts within the last window matter
            self.opened = {k: ts for k, ts in self.opened.items() if now - ts[-1] < self.window}

    def _too_soon(self, key, stream, now: float) -> bool:
        """A stream still open is restarted only if it sent nothing for a heartbeat (a third
        of the window): its receiver lost what was on the way (a broker restarted); a finished
        one may be fetched anew (the same blob again, or it hashed wrong), but not more than
        RESTARTS_PER_WINDOW times a window."""
        recent = [t for t in self.opened.get(key, ()) if now - t < self.window]
        self.opened[key] = recent
        if stream is not None:
            return now - stream.last < self.window / 3
        return len(recent) >= RESTARTS_PER_WINDOW
