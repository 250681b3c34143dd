"""The worker's socket loop: one DEALER to the broker and the jobs' exit reports, polled together;
big staging and collecting on a thread pool that wakes the loop by a pipe."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import zmq

from protocol.timing import Timing
from rake_common.logsetup import fail, warn
from rake_common.dealer import make_dealer, new_identity
from rake_common.zmqio import receive_waiting, send_frames
from rakeauth.client import ClientCurve
from worker.cache import BlobCache
from worker.downloads import Downloads
from worker.core import Abandon, GiveUp, Kill, Reconnect, Refetch, Send, Serve, Start, Take, WorkerCore
from worker.execute import JobDirs, Outcome
from worker.inputs import Fetch
from worker.execute import attempt
from worker.jobs import Jobs
from worker.sandbox import StagingError
from worker.transfer import Outgoing
from worker.isolation import Spawner, open_spawner
from worker.limits import NONE, Limits
from worker.watch import FULL_AFTER_SUCCESS, disk_full

class WorkerLoop:
    """Owns the DEALER socket and the jobs; pool threads only touch the done-queue and pipe."""

    def __init__(self, broker: str, name: str, host: str, slots: int, workdir: str,
                 timing: Timing, log: Callable[[str], None], ctx: zmq.Context | None = None,
                 isolate: str = "auto", cache_dir: str | None = None, cache_limit: int = 4 << 30,
                 curve: ClientCurve | None = None, limits: Limits = NONE):
        self.ctx = ctx or zmq.Context.instance()
        self.curve = curve
        self.broker, self.workdir, self.log = broker, workdir, log
        self.cache = BlobCache(cache_dir or os.path.join(workdir, "cache"), cache_limit)
        self.outgoing = Outgoing(self.cache.use, timing.expiry)
        self.core = WorkerCore(name, host, slots, timing, time.monotonic(), log, store=self.cache)
        self.downloads = Downloads(self.cache, self.core, self._send_each, self._perform, log)
        self.pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="rake-job")
        self.jobdirs = JobDirs(workdir)
        self.spawner = open_spawner(isolate, log, limits)
        self.jobs = Jobs(self.jobdirs, name, self.spawner, self.cache, offload=self._offload, limits=limits, log=log)
        self.done: queue.Queue = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        self.polled: tuple = ()          # what self.poller watches (see _poller)
        self.poller: zmq.Poller | None = None
        os.set_blocking(self.wake_r, False)
        self.identity = new_identity(b"W")
        self.sock = make_dealer(self.ctx, broker, self.identity, curve)
        self.stop_requested = 0       # 1: drain, 2: kill and leave
        self.failed = False
        self.draining = False
        self.local_out: Callable | None = None   # see hand_to
        self.unreachable = False   # a send found no broker: said once, until the broker is heard
        self.next_disk_check = 0.0

    def hand_to(self, out: Callable) -> None:
        """The broker is in this process (the embedded cluster): every message goes to it
        through `out`, in order, as a Parcel where the core built it: no socket at all."""
        self.core.local = True
        self.local_out = out
        self.sock.close(linger=0)
        self.sock = None

    def take_local(self, item) -> None:
        """A message from a broker in this process (see hand_to)."""
        self._perform(self.core.on_frames(time.monotonic(), item))

    def request_stop(self, hard: bool = False) -> None:
        """Safe from a signal handler or another thread."""
        self.stop_requested = 2 if hard else max(self.stop_requested, 1)
        try:
            os.write(self.wake_w, b"s")
        except OSError:   # the loop has already ended and closed its pipe: nothing to wake
            pass

    def run(self) -> None:
        self.begin()
        try:
            while not self.finished():
                poller = self._poller(self.poll_items())
                timeout = min(3600.0, max(0.0, self.next_deadline() - time.monotonic()))
                self.handle(dict(poller.poll(timeout * 1000 + 1)))
        finally:
            self.end()

    # ---- the steps of run(), which an embedding loop may also drive itself ----------------
    def begin(self) -> None:
        self._perform(self.core.greet(time.monotonic()))

    def finished(self) -> bool:
        """Whether to stop now: killed, drained after a stop request (nothing runs, and no big
        output a result named is still to be fetched), or the spawner died."""
        if self.stop_requested and not self.draining:
            self.draining = True
            self._perform(self.core.drain(time.monotonic()))
        now = time.monotonic()
        if self.stop_requested == 2 or (self.draining and self.core.settled(now) and not self.outgoing.awaited(now)):
            return True
        if self.spawner is not None and self.spawner.dead:
            # Its actions ended as errors, to be retried elsewhere. Without a namespace it is their
            # parent, so one can kill it (SIGKILL): start another. A namespace's spawner cannot be
            # killed from inside; running on without it would leave actions unprotected: stop.
            if not self.spawner.namespace and self._respawn():
                return False
            fail(self.log, "the spawner died; stopping")
            self.failed = True
            return True
        return False

    def _respawn(self) -> bool:
        warn(self.log, "the spawner died (killed by an action?); starting another")
        self.spawner.close()
        try:
            self.spawner = self.jobs.spawner = Spawner(self.jobs.limits, namespace=False)
        except OSError as e:
            warn(self.log, f"could not start another spawner: {e}")
            return False
        return True

    def poll_items(self) -> tuple:
        return (*((self.sock,) if self.sock is not None else ()), self.wake_r, *self.jobs.fds())

    def next_deadline(self) -> float:
        return min(self.core.next_deadline(), self.jobs.next_deadline())

    def handle(self, events: dict) -> None:
        """After a wait: take what `events` (from polling poll_items) says is ready, then timers."""
        if self.wake_r in events:   # a pool thread finished something, or a stop request
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 4096)
            self._finish_done()
        for fd in self.jobs.fds():
            if fd in events:
                self._exited(self.jobs.on_readable(fd))
        self.jobs.on_tick(time.monotonic())
        self._check_disk(time.monotonic())
        if self.sock in events:
            self._drain_socket()
        now = time.monotonic()
        self.downloads.tick(now)
        self._perform(self.core.on_tick(now))
        self.jobs.tidy()
        # What queued jobs, and jobs waiting for a fetch, will stage is in use (a wait may outlast RECENT).
        held = itertools.chain((d for _, _, files in self.core.queue for _, _, d in files), self.core.gate.present(),
                               self.outgoing.held(now))
        self.cache.keep_free(now, in_use=held)

    def _check_disk(self, now: float) -> None:
        """Once a second: a full disk fails every job here at once; it is reported in our load
        (rake-status shows it, submitters pass us over while others live) and logged."""
        if now < self.next_disk_check:
            return
        self.next_disk_check = now + 1.0
        full = disk_full(self.workdir, as_root=self.jobs.limits.uid is None and os.geteuid() == 0)
        if bool(full) != bool(self.core.full):
            warn(self.log, f"{full}: jobs fail here until there is room" if full else "the disk has room again")
        self.core.full = full
        if full and disk_full(self.workdir, as_root=self.jobs.limits.uid is None and os.geteuid() == 0,
                              below=FULL_AFTER_SUCCESS):
            self.jobs.note_full(now)   # all but full: under 1 MiB an action may still succeed

    def end(self) -> None:
        """Leave the broker (killing what still runs if stopped hard) and release everything."""
        self._perform(self.core.leave(time.monotonic(), killed=self.stop_requested == 2))
        self.jobs.kill_all()
        self.jobs.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.spawner is not None:
            self.spawner.close()
        self.jobdirs.remove_all()
        if self.sock is not None:
            self.sock.close(linger=500 if self.draining else 0)
        os.close(self.wake_r), os.close(self.wake_w)
        self.cache.close()

    def _poller(self, items: tuple) -> zmq.Poller:
        """The same poller while the socket and descriptors stay (with a spawner: always)."""
        if items != self.polled:
            self.polled, self.poller = items, zmq.Poller()
            for item in items:
                self.poller.register(item, zmq.POLLIN)
        return self.poller

    def _drain_socket(self) -> None:
        for _ in range(256):
            frames = receive_waiting(self.sock)
            if frames is None:
                return
            self.unreachable = False
            self._perform(self.core.on_frames(time.monotonic(), frames))

    def _finish_done(self) -> None:
        while True:
            try:
                then, value, error = self.done.get_nowait()
            except queue.Empty:
                return
            self._finished(then(value, error))

    def _exited(self, exits: list) -> None:
        # Free the slots first: the next jobs start before these results are built.
        for key, status, *_ in exits:   # a wait status: 0 only for exit status 0
            self._perform(self.core.on_exited(time.monotonic(), key, failed=bool(status)))
        for exit in exits:
            self._finished(self.jobs.finish(exit))

    def _finished(self, ended: list) -> None:
        for key, outcome in ended:
            self.outgoing.expect([o.digest for o in outcome.outputs if o.data is None], time.monotonic())
            self._perform(self.core.on_finished(time.monotonic(), key, outcome))

    def _offload(self, fn, then) -> list:
        """Run fn on the pool; then(result, error) runs later on this thread."""
        def work() -> None:
            self.done.put((then, *attempt(fn)))
            os.write(self.wake_w, b"d")
        self.pool.submit(work)
        return []

    def _perform(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.frames)
            elif isinstance(action, Start):
                self._start(action)
            elif isinstance(action, Kill):
                self.jobs.kill(action.key)
            elif isinstance(action, Abandon):
                self.downloads.abandon(action.digest)
            elif isinstance(action, Fetch):
                self.downloads.add(action)
            elif isinstance(action, Serve):
                self._send_each(self.outgoing.on_want(action.want.sender, action.want))
            elif isinstance(action, Take):
                self.downloads.take_chunk(action.chunk, action.blobs)
            elif isinstance(action, Refetch):
                self.downloads.refetch(time.monotonic())
            elif isinstance(action, GiveUp):
                fail(self.log, f"the broker refused us: {action.why}")
                self.failed, self.stop_requested = True, 2
            elif isinstance(action, Reconnect):
                if self.sock is not None:   # a local broker (hand_to) needs no reconnecting
                    self.sock.close(linger=0)
                    self.sock = make_dealer(self.ctx, self.broker, self.identity, self.curve)

    def _send_each(self, messages: list) -> None:
        for frames in messages:
            self._send(frames)

    def _send(self, frames) -> None:
        if self.local_out is not None:
            self.local_out(frames)
            return
        try:
            send_frames(self.sock, frames)
        except zmq.Again:
            if not self.unreachable:   # once an outage, not at every heartbeat of it
                keys = "; with CURVE keys, is ours in its --worker-keys and --server-key its own?" if self.curve else ""
                warn(self.log, f"broker not reachable (not running{keys}): messages are dropped until it is, "
                               "and their senders retry them")
            self.unreachable = True

    def _start(self, action: Start) -> None:
        job = action.job
        if self.core.full:   # looked at again: room may be back since the last look (up to 1 s)
            self.next_disk_check = 0.0
            self._check_disk(time.monotonic())
        if self.core.full:   # it would run to its end and fail there: an error now, run elsewhere
            return self._finished([(action.key, Outcome("error", error=self.core.full))])
        try:
            files = [(path, mode, self._cached(digest)) for path, mode, digest in action.files]
        except StagingError as e:
            return self._finished([(action.key, Outcome("error", error=str(e)))])
        self._finished(self.jobs.start(action.key, job.command, files, job.timeout, time.monotonic(),
                                       size=sum(self.cache.size(digest) for _, _, digest in action.files),
                                       digests=[digest for _, _, digest in action.files], umask=job.umask))

    def _cached(self, digest: str) -> str:
        path = self.cache.use(digest)
        if path is None:
            raise StagingError(f"input blob {digest[:12]} left the cache before the job ran")
        return path
