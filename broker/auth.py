"""CURVE on the broker: the allow-lists of public keys, and the ZAP thread that checks each handshake."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Callable

import zmq
from zmq.utils import z85

from broker.roles import ROLES, SUBMITTER, WORKER, User
from rake_common.logsetup import warn
from rakeauth.keys import PUBLIC_SUFFIX, KeyFileError, read_keys

ZAP_ENDPOINT = "inproc://zeromq.zap.01"   # fixed by RFC 27: libzmq asks here
ZAP_DOMAIN = b"rake"


def fingerprint(public_z85: bytes) -> str:
    return hashlib.sha256(public_z85).hexdigest()[:16]


class KeyRing:
    """The keys allowed in, by role. The broker loop thread calls refresh(); the ZAP thread only
    reads `current`, a dict that is replaced whole, never changed in place."""

    def __init__(self, submitter_dir: str, worker_dir: str, log: Callable[[str], None]):
        self.dirs = {SUBMITTER: submitter_dir, WORKER: worker_dir}
        self.log = log
        for role, d in self.dirs.items():
            if not os.path.isdir(d):
                raise KeyFileError(f"--{role}-keys {d}: not a directory")
        self.current: dict[bytes, User] = {}
        self.in_both: dict[bytes, str] = {}   # keys refused for being listed in both roles -> name
        self.signature: tuple = ()
        self.problems: set[str] = set()   # said once, not at every refresh while they last
        self.refresh(force=True)

    def users(self) -> set[str]:
        return {u.encode() for u in self.current.values()}

    def refresh(self, force: bool = False) -> bool:
        """Re-read the directories if any key file was added, removed or changed; True if so."""
        problems: set[str] = set()
        signature = tuple(self._listing(role, problems) for role in ROLES)
        for problem in sorted(problems - self.problems):
            warn(self.log, problem)
        self.problems = problems
        if signature == self.signature and not force:
            return False
        self.signature = signature
        keys: dict[bytes, User] = {}
        clashes: set[bytes] = set()
        for role, entries in zip(ROLES, signature):
            for name, *_ in entries:
                path = os.path.join(self.dirs[role], name + PUBLIC_SUFFIX)
                try:
                    public, _ = read_keys(path, listed=True)
                except KeyFileError as e:
                    warn(self.log, f"ignoring key file: {e}")
                    continue
                if public in keys and keys[public].role != role:
                    clashes.add(public)   # one key, two roles: trust it for neither
                keys[public] = User(role, fingerprint(public), name)
        both = {public: keys.pop(public).name for public in clashes}
        for name in sorted(both.values()):
            warn(self.log, f"key {name} is listed as both worker and submitter; refused for both")
        self.current, self.in_both = keys, both   # each replaced whole: the ZAP thread reads them
        self.log(f"keys loaded: {sum(u.role == WORKER for u in keys.values())} worker, "
                 f"{sum(u.role == SUBMITTER for u in keys.values())} submitter")
        return True

    def _listing(self, role: str, problems: set[str]) -> tuple:
        d = self.dirs[role]
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(PUBLIC_SUFFIX))
            entries = []
            for n in names:
                try:
                    st = os.stat(os.path.join(d, n))
                except OSError as e:   # one bad entry (a dangling link, a file just removed) only
                    problems.add(f"skipping {os.path.join(d, n)}: {e.strerror}")
                    continue
                # ctime: a chmod or chown (a key the broker could not read, now readable) counts too
                entries.append((n[: -len(PUBLIC_SUFFIX)], st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
            return tuple(entries)
        except OSError as e:
            # A vanished directory lists nothing: fail closed rather than keep stale keys.
            problems.add(f"cannot read --{role}-keys {d}: {e.strerror}; no {role} key is accepted")
            return ()


class ZapThread:
    """Answers libzmq's ZAP requests from its own thread and socket. Until it has bound, and
    after it stops, a CURVE socket with ZAP_ENFORCE_DOMAIN accepts nobody (fail closed)."""

    def __init__(self, ctx: zmq.Context, ring: KeyRing, log: Callable[[str], None]):
        self.ctx, self.ring, self.log = ctx, ring, log
        self.wake_r, self.wake_w = os.pipe()
        self.ready = threading.Event()
        self.error: Exception | None = None
        self.refused = 0
        self.thread = threading.Thread(target=self._run, name="rake-zap", daemon=True)
        self.thread.start()
        self.ready.wait(10)
        if self.error is not None or not self.ready.is_set():
            raise RuntimeError(f"cannot start the authenticator: {self.error}")

    def stop(self) -> None:
        os.write(self.wake_w, b"s")
        self.thread.join(timeout=5)
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _run(self) -> None:
        try:
            sock = self.ctx.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        try:
            while self.wake_r not in dict(poller.poll()):
                sock.send_multipart(self._answer(sock.recv_multipart()))
        finally:
            sock.close(linger=0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != b"1.0":
            return [b"1.0", request[1] if len(request) > 1 else b"", b"400", b"bad ZAP request", b"", b""]
        _, request_id, domain, address, _, mechanism, *credentials = request
        user = None
        if domain == ZAP_DOMAIN and mechanism == b"CURVE" and len(credentials) == 1 and len(credentials[0]) == 32:
            user = self.ring.current.get(z85.encode(credentials[0]))
        if user is None:
            self._note_refusal(address, mechanism, credentials)
            return [b"1.0", request_id, b"400", b"key not allowed", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", user.encode().encode(), b""]

    def _note_refusal(self, address: bytes, mechanism: bytes, credentials: list[bytes]) -> None:
        self.refused += 1
        if self.refused <= 20 or self.refused % 1000 == 0:   # bounded: a key-spraying peer cannot flood the log
            key = z85.encode(credentials[0]) if credentials and len(credentials[0]) == 32 else b"-"
            both = self.ring.in_both.get(key)
            why = (f"key {both}: listed as both worker and submitter" if both is not None
                   else f"key {key.decode()}: not in --worker-keys or --submitter-keys")
            warn(self.log, f"refused {mechanism.decode(errors='replace')} peer {address.decode(errors='replace')} "
                     f"({why}; {self.refused} refused so far)")
