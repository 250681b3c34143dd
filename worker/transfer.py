"""Moving big blobs as chunks with credit-based flow control (the ZeroMQ guide's pattern).

Used on both sides: a worker fetching inputs from a submitter and serving outputs to it, a
submitter serving inputs and fetching outputs. The receiver grants credit (`Want.upto`) one
window ahead of what it has written, so no process in between holds more than a window.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from protocol import Chunk, Want, encode
from rake_common.sparse import is_hole

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


@dataclass
class _Download:
    peer: str
    size: int
    tmp: str
    fd: int
    hasher: object = field(default_factory=hashlib.sha256)
    received: int = 0
    restarts: int = 0
    lost: bool = False   # went through a broker that has forgotten us since (see resume)
    last: float = field(default_factory=time.monotonic)   # when it last made progress


class Incoming:
    """Blobs we asked for: written to temporary files as they come, checked at the end.
    With a `limit`, at most that many come at once and the rest wait their turn: each one
    in progress holds up to a WINDOW in the broker and here, so a hundred big outputs
    fetched at once would hold hundreds of MiB."""

    def __init__(self, temp_path: Callable[[], str], limit: int | None = None):
        self.temp_path = temp_path
        self.limit = limit
        self.downloads: dict[str, _Download] = {}
        self.waiting: dict[str, tuple[str, int]] = {}   # digest -> (peer, size), in order asked
        self.failed: list[tuple[str, str]] = []   # (digest, why) given up on by restart_stalled
        self.name_of: Callable[[str], str] = lambda peer: peer[:12]   # a peer as its messages name it

    def busy(self, digest: str) -> bool:
        return digest in self.downloads or digest in self.waiting

    def start(self, peer: str, digest: str, size: int) -> list:
        if self.limit is not None and len(self.downloads) >= self.limit:
            self.waiting[digest] = (peer, size)
            return []
        tmp = self.temp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.downloads[digest] = _Download(peer, size, tmp, fd)
        return [encode(Want(to=peer, digest=digest, upto=WINDOW, restart=True))]

    def on_chunk(self, chunk: Chunk, data) -> tuple[list, tuple[str, str] | None, str | None]:
        """(frames to send, (digest, finished file) or None, why it failed or None)."""
        d = self.downloads.get(chunk.digest)
        if d is not None and chunk.sender != d.peer:
            return [], None, None   # not from the peer we fetch from (the broker stamps `sender`):
            #                         anyone else could end or corrupt another's download
        if d is not None and d.size == 0 and d.received == 0:
            d.size = chunk.total   # sent by digest without a size: trust the sender's
        if d is not None and chunk.missing:   # at any offset: the holder lost it (or it changed) midway
            self._drop(chunk.digest)
            return [], None, (f"{self.name_of(d.peer)} no longer has blob {chunk.digest[:12]} "
                              "(was the file changed or removed while it was being sent?)")
        if d is None or chunk.offset != d.received or chunk.total != d.size:
            return [], None, None   # not ours, or a leftover of a restarted stream
        view = memoryview(data)
        if not view and d.received < d.size:   # no progress can come of it: as if missing
            self._drop(chunk.digest)
            return [], None, f"{self.name_of(d.peer)} sent blob {chunk.digest[:12]} short"
        if d.received + len(view) > d.size:   # past the size it said: nothing of it is written
            self._drop(chunk.digest)
            return [], None, f"{self.name_of(d.peer)} sent blob {chunk.digest[:12]} longer than its {d.size} bytes"
        d.last, d.lost = time.monotonic(), False
        if not is_hole(view):   # a hole stays one; the file gets its length at the end
            os.pwrite(d.fd, view, d.received)
        d.hasher.update(view)
        d.received += len(view)
        if d.received < d.size:
            return [encode(Want(to=d.peer, digest=chunk.digest, upto=d.received + WINDOW))], None, None
        return self._finish(chunk.digest, d)

    def pump(self) -> list:
        """Start what waits, as far as the limit allows (after one ended or was dropped). One
        that cannot start (no descriptor, a full disk) is given up on, as a stalled one."""
        out = []
        while self.waiting and (self.limit is None or len(self.downloads) < self.limit):
            digest = next(iter(self.waiting))
            peer, size = self.waiting.pop(digest)
            try:
                out += self.start(peer, digest, size)
            except OSError as e:
                self.failed.append((digest, f"cannot receive blob {digest[:12]}: {e.strerror or e}"))
        return out

    def _finish(self, digest: str, d: _Download):
        if d.hasher.hexdigest() == digest:
            os.ftruncate(d.fd, d.size)   # the length, where it ends in a hole that was never written
            os.close(d.fd)
            del self.downloads[digest]
            return [], (digest, d.tmp), None
        if d.restarts >= MAX_RESTARTS:
            self._drop(digest)
            return [], None, f"blob {digest[:12]} arrived corrupted {MAX_RESTARTS + 1} times"
        # Corrupted on the way: fetch it again from the start.
        d.restarts += 1
        d.received, d.hasher = 0, hashlib.sha256()
        os.ftruncate(d.fd, 0)
        return [encode(Want(to=d.peer, digest=digest, upto=WINDOW, restart=True))], None, None

    def restart_stalled(self, now: float, patience: float) -> list:
        """Ask again, from the start, for downloads that made no progress for `patience`
        (a message lost with a restarting broker); give up after a few tries."""
        out = []
        for digest, d in list(self.downloads.items()):
            if now - d.last <= patience:
                continue
            if d.restarts >= MAX_RESTARTS:
                self._drop(digest)
                self.failed.append((digest, f"blob {digest[:12]} stalled {MAX_RESTARTS + 1} times"))
                continue
            d.restarts += 1
            d.received, d.hasher, d.last = 0, hashlib.sha256(), now
            os.ftruncate(d.fd, 0)
            out.append(encode(Want(to=d.peer, digest=digest, upto=WINDOW, restart=True)))
        return out

    def resume(self, now: float, since: float = 0.0) -> None:
        """The broker was silent, or did not know us (it dropped us, or restarted): what it
        held of our downloads, WANTs and chunks, may have gone nowhere. Each is asked again
        when its holder is confirmed (ask_again); stalls count afresh, from `since` seconds
        ago (if that ask goes astray, the stall check asks sooner than a whole patience)."""
        for d in self.downloads.values():
            d.last, d.restarts, d.lost = now - since, 0, True

    def ask_again(self, peers) -> list:
        """Downloads from these peers (None: all), confirmed after a broker reset, of which nothing came
        since: asked again from the start (the holder takes a restart of a stream idle for
        a heartbeat, see Outgoing._too_soon)."""
        out = []
        for digest, d in self.downloads.items():
            if d.lost and (peers is None or d.peer in peers):
                d.received, d.hasher, d.lost = 0, hashlib.sha256(), False   # d.last: as resume() set it
                os.ftruncate(d.fd, 0)
                out.append(encode(Want(to=d.peer, digest=digest, upto=WINDOW, restart=True)))
        return out

    def given_up(self) -> list[tuple[str, str]]:
        failed, self.failed = self.failed, []
        return failed

    def abandon(self, digest: str) -> None:
        self.waiting.pop(digest, None)
        if digest in self.downloads:
            self._drop(digest)

    def fail_peer(self, peer: str) -> list[str]:
        """Drop downloads from a peer that is gone (and those waiting); returns their digests."""
        gone = [dg for dg, d in self.downloads.items() if d.peer == peer]
        for digest in gone:
            self._drop(digest)
        queued = [dg for dg, (p, _) in self.waiting.items() if p == peer]
        for digest in queued:
            del self.waiting[digest]
        return gone + queued

    def _drop(self, digest: str) -> None:
        d = self.downloads.pop(digest)
        os.close(d.fd)
        try:
            os.unlink(d.tmp)
        except OSError:
            pass
