"""The receiving side of chunked transfers (worker/transfer.py has the protocol): blobs
asked for, written to temporary files as they come, checked by sha256 at the end."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from protocol import Chunk, Want, encode
from rake_common.sparse import is_hole
from worker.transfer import MAX_RESTARTS, WINDOW


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
