"""Local actions: run on a thread of the submitter, in the project directory, killable
from the loop thread through a registry."""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from rake_common.tempdirs import locked_tempdir
from rake_common.tree import remove_tree
from submitter.interrupts import held
from submitter.spool import take
from submitter.watchdog import Watchdog
from worker.execute import Outcome, raw_status
from worker.watch import disk_full


GRACE = 2.0   # seconds an interrupted local action has to clean up before SIGKILL


class ProcessRegistry:
    """How to signal each running job's process group, so the loop thread can stop one a
    runner thread waits on. Once closed (the run is ending), a job that registers after
    all were stopped (its thread was inside Popen) is stopped at once; so is one that
    registers while the run is paused (Ctrl-Z)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()   # re-entrant: Ctrl-Z (a signal handler) may come while held
        self._groups: dict[object, int] = {}
        self._killed: set[object] = set()
        self._closed: int | None = None   # the signal every job gets once the run ends
        self._signalled: set[int] = set()   # groups given that signal: what is left of them gets SIGKILL
        self._paused = False
        self.watchdog = Watchdog()   # kills them should rake-submit die without doing it

    @property
    def closed(self) -> bool:
        """The run is ending (an interrupt, a broker given up on): start nothing more."""
        return self._closed is not None

    def add(self, key: object, pgid: int) -> None:
        with self._lock:
            self._groups[key] = pgid
            self.watchdog.started(pgid)
            if self._closed is not None:
                self._killed.add(key)
                self._signalled.add(pgid)
                sig = self._closed
            else:
                sig = signal.SIGKILL if key in self._killed else signal.SIGSTOP if self._paused else None
        if sig is not None:
            signal_group(pgid, sig)

    def remove(self, key: object) -> bool:
        """Forget `key` (its shell ended); True if it was killed on request."""
        with self._lock:
            pgid = self._groups.pop(key, None)
            if pgid is not None and pgid not in self._signalled:   # what is left of one being
                self.watchdog.ended(pgid)                          # stopped is still to kill
            if key in self._killed:
                self._killed.discard(key)
                return True
            return False

    def kill(self, key: object, sig: int = signal.SIGKILL) -> None:
        with self._lock:
            self._killed.add(key)
            pgid = self._groups.get(key)
        if pgid is not None:
            signal_group(pgid, sig)

    def pause(self, resume: bool) -> None:
        """Stop (SIGSTOP: in a session of its own a job would ignore the terminal's SIGTSTP)
        or continue every running job."""
        with self._lock:
            self._paused = not resume
            groups = list(self._groups.values())
        for pgid in groups:
            signal_group(pgid, signal.SIGCONT if resume else signal.SIGSTOP)

    def kill_all(self, sig: int = signal.SIGKILL, grace: float = 0.0) -> None:
        """Stop every job, and any that registers later. A signal other than SIGKILL is
        what a terminal would have sent the actions (rake-submit's own interrupt), so that
        they can clean up as under make; whatever is left of their process groups after
        `grace` seconds gets SIGKILL (a `cmd &` of a shell ignores SIGINT, and outlives
        the shell the signal ended)."""
        with self._lock:
            self._closed = signal.SIGKILL if self._closed == signal.SIGKILL else sig
            keys = list(self._groups)
            self._signalled.update(self._groups.values())
        for key in keys:
            self.kill(key, sig)
            if sig != signal.SIGKILL:   # a stopped one must be able to act on it
                self.kill(key, signal.SIGCONT)
        deadline = time.monotonic() + (grace if sig != signal.SIGKILL else 0)
        for _ in range(1000):   # bounded: the grace, in 10 ms steps
            with self._lock:
                left = [g for g in self._signalled if group_alive(g)]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        with self._lock:   # the grace is over: one that registers from now on is killed at once
            self._closed = signal.SIGKILL   # (a shell that caught `sig` before it forked would wait)
            left = [g for g in self._signalled if group_alive(g)]
        for pgid in left:
            signal_group(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """A member of the group still runs. Zombies do not count: the shell's children that the
    signal ended after it are orphans, and an init that reaps late (a container's PID 1 that
    is no init) leaves them in the group, which kill(0) still finds: every interrupt waited
    the whole GRACE."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        names = os.listdir("/proc")
    except OSError:   # no /proc: take kill's word for it
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_shell(key, command: str, cwd: str, tmpdir: str, env: dict, timeout: float | None,
              registry: ProcessRegistry) -> Outcome:
    """Run `command` with /bin/sh in its own session; output is captured, not streamed.

    Output goes to files, not pipes: no deadlock however much a command writes.
    """
    argv = ["/bin/sh", "-c", command]
    with contextlib.ExitStack() as unread:   # closes what take() did not take over
        out = unread.enter_context(tempfile.TemporaryFile(dir=tmpdir))
        err = unread.enter_context(tempfile.TemporaryFile(dir=tmpdir))
        wait = _spawn_here(argv, cwd, env, out, err, key, registry)
        timed_out = False
        try:
            status = wait(timeout)
            if status is None:
                timed_out = True
                registry.kill(key)
                status = wait(None)
        finally:
            killed = registry.remove(key)
        full = disk_full(tmpdir, as_root=os.geteuid() == 0)   # while its captured output still takes room
        stdout, stderr = take(out), take(err)
        unread.pop_all()   # a Spool that take() kept open is the Outcome's to close now
        outcome = Outcome("exited", stdout=stdout, stderr=stderr)
    rc = os.waitstatus_to_exitcode(status)
    if killed and not timed_out:
        outcome.status = "cancelled"
    elif timed_out:
        outcome.status, outcome.code = "timeout", signal.SIGKILL
    elif rc < 0:
        outcome.status, outcome.code = "signalled", -rc
    else:
        outcome.code = rc
    if outcome.code and full:
        # Its output is captured there: what it wrote (and why it failed) may be lost.
        outcome.error = f"rake-submit's temporary directory {tmpdir} is full (TMPDIR): its output may be cut short"
    return outcome


def start_local(pool, key, command: str, cwd: str, tmpdir: str, registry: ProcessRegistry,
                finish: Callable[[Outcome], None]) -> None:
    """Run a local action on `pool`; `finish(outcome)` is called once, however it ends: an
    action that cannot start (no descriptor, no thread) fails, and the run goes on."""
    claim = threading.Lock()   # whoever takes it first says how it ended: finish() runs once

    def work() -> None:
        if not claim.acquire(blocking=False):   # already said to have failed: not run after all
            return
        if registry.closed:   # queued behind the pool's threads when Ctrl-C came: never started
            return finish(Outcome("withdrawn"))
        try:
            finish(run_shell(key, command, cwd, tmpdir, dict(os.environ), None, registry))
        except Exception as e:   # e.g. out of descriptors; a MemoryError says nothing itself
            finish(Outcome("error", error=f"could not start it: {e or type(e).__name__}"))
    try:
        # Interrupts wait until it returns: one raised inside it (while a new thread starts)
        # left that thread running but unknown to the pool, so nothing waited for it, and
        # the processes it went on to start outlived rake-submit, never registered.
        with held:
            pool.submit(work)
    except RuntimeError as e:   # no thread to be had (the process limit)
        # submit() queued the work before it failed to start a thread for it: a thread the
        # pool already has may yet run it. Only one of the two may say how it ended.
        if claim.acquire(blocking=False):
            finish(Outcome("error", error=f"could not start it: {e}"))


def _spawn_here(argv, cwd, env, out, err, key, registry):
    """A plain child in its own session: the process group is the whole job."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=err, start_new_session=True)
    registry.add(key, proc.pid)

    def wait(timeout):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        # What it started in the background (`(sleep 2; touch x) &`) runs on, as under make:
        # this is the user's own machine. Only a cancel, timeout or interrupt kills the group.
        return raw_status(proc.returncode)
    return wait


class LocalActions:
    """A run's local actions: a thread to wait on each, a registry to stop them, and their
    outcomes queued for the loop thread, which a byte on `wake_r` wakes."""

    def __init__(self, threads: int):
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.registry = ProcessRegistry()
        self.done: queue.Queue = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.tmpdir, self.tmp_lock = locked_tempdir("rake-submit-", ".lock")   # swept if we are killed

    def start(self, index: int, command: str, root: str) -> None:
        def finish(outcome: Outcome) -> None:
            self.done.put((index, outcome))   # before its wake-up byte
            os.write(self.wake_w, b"l")
        start_local(self.pool, ("local", index), command, root, self.tmpdir, self.registry, finish)

    def ended(self):
        """(index, outcome) of those that ended since the last call, one at a time: one an
        interrupt cuts short stays queued."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_r, 4096)
        while True:
            try:
                yield self.done.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self.registry.kill_all()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.registry.watchdog.close()
        for fd in (self.wake_r, self.wake_w, self.tmp_lock):
            os.close(fd)
        remove_tree(self.tmpdir)


MAX_LOCAL_THREADS = 512   # and threads are a limited resource too (RLIMIT_NPROC, memory)


def local_threads(rakefile, options) -> int:
    """Threads to wait on local actions, one each: as many as an actionset may run at once
    (all of its local actions unless -j caps them), or some would wait for a thread, not
    for -j. Each running one holds about four descriptors (two capture files, the shell's
    pipe ends), so the open-files limit caps them too."""
    local = max((sum(not a.remote for a in s.actions) for s in rakefile.actionsets), default=1)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # 256 kept for our own use, but 16 threads at least when that leaves room for them.
    room = local if soft == resource.RLIM_INFINITY else max(min(16, (soft - 32) // 4), (soft - 256) // 4, 1)
    return max(1, min(local, options.jobs or local, room, MAX_LOCAL_THREADS))
