"""The broker's socket loop: one ROUTER, polled until the core's next deadline."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import resource
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from broker.auth import ZAP_DOMAIN, KeyRing, ZapThread
from broker.bind import ipc_in_use, ipc_not_a_socket, ipc_path
from broker.core import BrokerCore
from broker.ratelimit import RateLimiter
from broker.snapshot import build_status
from protocol import Parcel
from protocol.codec import MAX_FRAME
from protocol.timing import Timing
from rake_common.logsetup import fail, warn
from rake_common.zmqio import receive_waiting, send_frames

FD_CHECK_EVERY = 1.0      # seconds between looks at how many descriptors are left
FD_SPARE = 8              # fewer left than this is worth a warning
FD_WARN_EVERY = 60.0      # seconds, at most once while it lasts
BATCH = 256               # messages handled per wake-up before timers get a turn,
DRAIN_FOR = 0.05          # or seconds: a legal 16 MiB header takes 0.25 s to decode, and 256 of
#                           them, from one peer, left our heartbeats unsent for a minute
KEY_CHECK_EVERY = 1.0     # seconds between looks at the key directories
PUBLISH_EVERY = 0.2       # seconds between dashboard snapshots (only with --http)


@dataclass
class ServerCurve:
    """The broker's CURVE configuration: its secret key and the allow-lists."""
    secret: bytes
    ring: KeyRing


def make_router(ctx: zmq.Context, bind: str, curve: ServerCurve | None = None) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # an unknown peer is an error, not a silent drop
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)    # a reconnecting peer takes over its identity
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)   # no ZAP handler answering: nobody gets in
    if bind.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    refused = ipc_not_a_socket(bind)
    if refused is not None:
        sock.close()
        raise ValueError(f"--bind {bind}: {refused}")
    if ipc_in_use(bind):
        sock.close()
        raise zmq.ZMQError(errno.EADDRINUSE)
    sock.bind(bind)
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return sock, endpoint


class BrokerLoop:
    """Owns the ROUTER socket; `stop()` may be called from another thread."""

    def __init__(self, bind: str, timing: Timing, log: Callable[[str], None],
                 ctx: zmq.Context | None = None, curve: ServerCurve | None = None,
                 limiter: RateLimiter | None = None, dashboard=None, watch_descriptors: bool = False):
        self.ctx = ctx or zmq.Context.instance()
        self.curve = curve
        # The authenticator binds first, so no handshake can precede it; if it fails, we stop.
        self.zap = ZapThread(self.ctx, curve.ring, log) if curve is not None else None
        try:
            self.sock, self.endpoint = make_router(self.ctx, bind, curve)
        except (zmq.ZMQError, ValueError):
            if self.zap is not None:
                self.zap.stop()
            raise
        # Absolute now, so a relative ipc://NAME is removed at exit as an absolute one is.
        path = ipc_path(self.endpoint)
        self._ipc_file = os.path.abspath(path) if path is not None else None
        users = curve.ring.users() if curve is not None else None
        self.core = BrokerCore(timing, time.monotonic(), log, limiter, users)
        self.log = log
        self.reload_requested = False
        self.next_key_check = time.monotonic() + KEY_CHECK_EVERY
        self._wake_addr = f"inproc://broker-stop-{id(self)}"
        self._wake = self.ctx.socket(zmq.PAIR)
        self._wake.bind(self._wake_addr)
        self._stopping = False
        self.last_handled = time.monotonic()
        self.dashboard = dashboard          # broker.dashboard.Dashboard, or None
        # Out of descriptors, libzmq cannot accept connections and says so nowhere we would
        # see (the peer's connect just hangs): we look, once a check interval.
        self.next_fd_check = time.monotonic() if watch_descriptors else math.inf
        self.fd_warned = -math.inf
        self._next_publish = 0.0
        # What takes (peer, Parcel) for the peers in this process (core.local); set by the
        # embedded cluster, which hands them over without a socket.
        self.local_out: Callable | None = None

    def stop(self) -> None:
        self._stopping = True
        poke = self.ctx.socket(zmq.PAIR)
        poke.connect(self._wake_addr)
        poke.send(b"stop")
        poke.close(linger=100)

    def reload_keys(self) -> None:
        """Safe from a signal handler: the key directories are read again at the next wake-up."""
        self.reload_requested = True
        self.next_key_check = 0.0

    def run(self) -> None:
        poller = zmq.Poller()
        for item in self.poll_items():
            poller.register(item, zmq.POLLIN)
        try:
            while not self._stopping:
                timeout = min(3600.0, max(0.0, self.next_deadline() - time.monotonic()))
                self.handle(dict(poller.poll(timeout * 1000 + 1)))
        finally:
            self.close()

    # ---- the steps of run(), which an embedding loop may also drive itself ----------------
    def poll_items(self) -> tuple:
        return (self.sock, self._wake)

    def next_deadline(self) -> float:
        deadline = self.core.next_deadline()
        if self.curve is not None:
            deadline = min(deadline, self.next_key_check)
        if self.dashboard is not None:
            deadline = min(deadline, self._next_publish)
        return min(deadline, self.next_fd_check)

    def handle(self, events: dict) -> None:
        """After a wait: take what `events` (from polling poll_items) says is ready, then timers."""
        now = time.monotonic()
        # We wake at least once a heartbeat: a gap of a liveness window means we were stopped.
        if now - self.last_handled > self.core.timing.expiry and self.core.table.workers:
            self.core.excuse_silence(now)
        self.last_handled = now
        if self.sock in events:
            self._drain()
        self._check_keys()
        self._check_descriptors(now)
        self._send_all(self._guarded("a timer", self.core.on_tick, time.monotonic()))
        self._publish()

    def take_local(self, peer: str, item) -> None:
        """A message from a peer in this process: a Parcel, or frames it encoded itself."""
        now = time.monotonic()
        if isinstance(item, Parcel):
            self._send_all(self.core.on_parcel(now, peer, item))
        else:
            self._send_all(self.core.on_frames(now, peer, item))

    def close(self) -> None:
        self.sock.close(linger=0)
        self._wake.close(linger=0)
        if self._ipc_file is not None:   # ours (a live one is never bound over)
            with contextlib.suppress(OSError):
                os.unlink(self._ipc_file)
        if self.zap is not None:
            self.zap.stop()

    def _check_descriptors(self, now: float) -> None:
        if now < self.next_fd_check:
            return
        self.next_fd_check = now + FD_CHECK_EVERY
        left = descriptors_left()
        if left is not None and left < FD_SPARE and now - self.fd_warned >= FD_WARN_EVERY:
            self.fd_warned = now
            warn(self.log, f"{'no' if left <= 0 else f'only {left}'} open files left: new connections hang, "
                           "unaccepted (raise the open-files limit: ulimit -n, or LimitNOFILE= for a service)")

    def _check_keys(self) -> None:
        now = time.monotonic()
        if self.curve is None or now < self.next_key_check:
            return
        self.next_key_check = now + KEY_CHECK_EVERY
        if self.curve.ring.refresh(force=self.reload_requested):
            self._send_all(self.core.revoke(now, self.curve.ring.users()))
        self.reload_requested = False

    def _publish(self) -> None:
        """Hand the dashboard a fresh frozen snapshot; its threads never see the core itself."""
        now = time.monotonic()
        if self.dashboard is not None and now >= self._next_publish:
            self.dashboard.publish(build_status(self.core, now))
            self._next_publish = now + PUBLISH_EVERY

    def _drain(self) -> None:
        until = time.monotonic() + DRAIN_FOR
        for _ in range(BATCH):
            frames = receive_waiting(self.sock, copy=False)
            if frames is None:
                return
            peer = frames[0].bytes.hex()
            user = frames[0].get("User-Id") if self.curve is not None else None
            self._send_all(self._guarded(f"a message from {peer[:16]}", self.core.on_frames,
                                         time.monotonic(), peer, frames[1:], user))
            if time.monotonic() >= until:
                return   # timers (heartbeats out, liveness) now; the rest at once after

    def _guarded(self, what: str, step, *args) -> list:
        """A step of the core, whose failure (a bug of ours: peers' faults are refused inside
        it) costs what that step would have sent, not every peer its broker."""
        try:
            return step(*args)
        except Exception as e:   # logged loudly; the broker goes on serving everyone else
            fail(self.log, f"broker bug handling {what}: {type(e).__name__}: {e} "
                           f"(at {_where(e)}); please report it")
            self.core.stats["bugs"] += 1
            return []

    def _send_all(self, sends) -> None:
        for send in sends:
            peer, frames = send.peer, send.frames
            if type(frames) is Parcel:
                self.local_out(peer, frames)
                continue
            try:
                send_frames(self.sock, [bytes.fromhex(peer), *frames])
            except zmq.Again:
                self._send_all(self.core.on_full(send))
            except zmq.ZMQError as e:
                if e.errno != zmq.EHOSTUNREACH:
                    raise
                self._send_all(self.core.on_unroutable(peer, send))


def descriptors_left() -> int | None:
    """How many more files this process may open (0 if not even one), or None if unknown."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd")) - 1   # less the one listing them
    except OSError as e:
        return 0 if e.errno in (errno.EMFILE, errno.ENFILE) else None
    return None if soft == resource.RLIM_INFINITY else soft - used


def _where(error: BaseException) -> str:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else "?"
