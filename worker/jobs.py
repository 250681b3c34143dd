"""Jobs in flight, owned by the worker's loop thread: each is started without waiting and
finished when its exit is reported on a descriptor the loop polls, so no thread per job
sits in wait() and no hand-off between threads sits on a short job's path. Staging and
collecting run on the loop thread while small (most jobs); over LIGHT bytes or LIGHT_FILES
files, on the pool (`offload`), so a big copy or hash never delays heartbeats."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Callable

from rake_common.logsetup import warn
from worker.captures import Captures
from worker.execute import JobDirs, Outcome, attempt, failure_outcome, inline, job_environment, job_label, kill_group, raw_status
from worker.limits import NONE, Limits, apply, hand_over
from worker.running import Running, end_outcome
from worker.sandbox import collect_outputs, refingerprint, sandbox_intact, scan_outputs, stage_inputs, staged_as
from worker.watch import (FULL_AFTER_SUCCESS, FULL_BELOW, FULL_MEANWHILE, INTERVAL, disk_full, explain,
                          out_of_space, outputs_size, over_limits, read_capped, running_in_group, start_refused,
                          time_limit)

LIGHT = 8 << 20     # bytes, and
LIGHT_FILES = 64    # files: more than either goes to the pool

Finished = list   # of (key, Outcome)
GONE = "the action removed its sandbox directory (or put something in its place): no outputs returned"


class Jobs:
    """`offload(fn, then)` runs fn on another thread and later calls then(result, error) on
    the loop thread; it returns what then() returns, as finish() does."""

    def __init__(self, dirs: JobDirs, worker: str, spawner=None, cache=None,
                 offload: Callable | None = None, limits: Limits = NONE, log: Callable = lambda s: None):
        self.dirs, self.worker, self.spawner, self.cache, self.log = dirs, worker, spawner, cache, log
        self.stop_check = 0.0   # next look at whether an action stopped the spawner
        self.limits = limits
        self.watching = bool(limits.max_disk or limits.max_files)
        self.offload = offload or inline
        self.running: dict[object, Running] = {}
        self.by_request: dict[int, object] = {}   # spawner request id -> key
        self.by_pidfd: dict[int, object] = {}
        self.staging: dict[object, bool] = {}      # key -> cancelled while its inputs were staged
        self.captures = Captures(reuse=limits.uid is None)   # jobdir -> its (stdout, stderr) files
        self.untidy: list[str] = []                # job directories to empty once results are out
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.paused_at: float | None = None   # Ctrl-Z of an embedding rake-submit
        self.full_seen = float("-inf")   # when the disk was last seen full (note_full)

    # ---- starting -------------------------------------------------------------------------

    def start(self, key, command: str, files: list, timeout: float | None, now: float,
              size: int = 0, digests: list | None = None, umask: int | None = None) -> Finished:
        """files: (path, mode, bytes or cached path); size: their total bytes; digests: theirs,
        if known, so that an input the action touched but did not change is not sent back;
        umask: the action's (None: ours)."""
        if self.limits.max_disk and size > self.limits.max_disk:   # staged, they would pass it already
            return [(key, Outcome("error", error=f"its inputs take {size / (1 << 20):.1f} MiB, over the worker's "
                                                 f"disk limit of {self.limits.max_disk >> 20} MiB (--max-disk)"))]
        try:
            jobdir = self.dirs.take()
        except OSError as e:   # ours, not the job's: say so here too, not only to its submitter
            warn(self.log, f"could not make a sandbox: {e}")
            return [(key, Outcome("error", error=f"worker could not make a sandbox: {e}"))]
        self.staging[key] = False
        run = (command, staged_as(files, digests) if digests else {}, umask)   # for _staged
        if size <= LIGHT and len(files) <= LIGHT_FILES:
            return self._staged(key, run, jobdir, timeout, now, *attempt(self._stage, jobdir, files))
        return self.offload(lambda: self._stage(jobdir, files),
                            lambda snap, err: self._staged(key, run, jobdir, timeout, now, snap, err))

    def _stage(self, jobdir: str, files: list) -> dict:
        sandbox = os.path.join(jobdir, "sandbox")
        snapshot = stage_inputs(sandbox, files)
        if hand_over(jobdir, self.limits):   # to the --user: its new owner changed their ctime
            snapshot = refingerprint(sandbox, snapshot)
        return snapshot

    def _staged(self, key, run: tuple, jobdir, timeout, started, snapshot, error) -> Finished:
        (command, inputs, umask), cancelled = run, self.staging.pop(key, False)
        if out_of_space(error):
            self.note_full(time.monotonic())
        if error is not None or cancelled:
            self._give(jobdir)
            outcome = Outcome("cancelled") if cancelled else failure_outcome(error)
            outcome.elapsed = time.monotonic() - started
            return [(key, outcome)]
        sandbox, tmpdir = os.path.join(jobdir, "sandbox"), os.path.join(jobdir, "tmp")
        env = job_environment(sandbox, tmpdir, self.worker, job_label(key))
        try:
            out, err = self.captures.open(jobdir, tmpdir)
            timeout, over_time = time_limit(timeout, self.limits)
            now = time.monotonic()
            job = Running(key, jobdir, snapshot, out, err, started,
                          None if timeout is None else now + timeout, over_time=over_time,
                          next_check=now + INTERVAL if self.watching else float("inf"), inputs=inputs,
                          spawned=now)
            self._spawn(job, ["/bin/sh", "-c", command], sandbox, env, umask)
        # ValueError: what exec() cannot take, e.g. a NUL; SubprocessError: limits that a
        # child without the spawner could not apply to itself.
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            self.captures.drop(jobdir)
            self._give(jobdir)
            return [(key, Outcome("error", error=f"worker could not run the job: {e}"))]
        self.running[key] = job
        return []

    def _spawn(self, job: Running, argv: list[str], cwd: str, env: dict, umask: int | None) -> None:
        if self.spawner is not None:
            job.pid = self.spawner.start(argv, cwd, env, [self.devnull, job.out.fileno(), job.err.fileno()],
                                           env["RAKE_JOB"], umask)
            self.by_request[job.pid] = job.key
            return
        bind = None if self.limits == NONE else lambda: apply(self.limits)
        job.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=job.out,
                                    stderr=job.err, start_new_session=True, preexec_fn=bind,
                                    umask=-1 if umask is None else umask)
        job.pid, job.pidfd = job.proc.pid, os.pidfd_open(job.proc.pid)
        self.by_pidfd[job.pidfd] = job.key

    # ---- what the loop polls --------------------------------------------------------------

    def fds(self) -> list[int]:
        if self.spawner is not None:
            return [self.spawner.fileno()]
        return list(self.by_pidfd)

    def on_readable(self, fd: int) -> list:
        """Which jobs' processes ended: (key, wait status, error, processes left), cheap, so
        the loop can fill their slots before finish() collects what each one made."""
        exits = self._exits(fd)
        now = time.monotonic()
        for key, *_ in exits:
            if key in self.running:
                self.running[key].ended = now
        return exits

    def _exits(self, fd: int) -> list:
        exits = []
        if self.spawner is not None and fd == self.spawner.fileno():
            for request, status, error, left in self.spawner.read_replies():
                key = self.by_request.pop(request, None)
                if key is not None:
                    exits.append((key, status, error, left))
            if self.spawner.dead:   # nobody will ever report the others
                exits += [(self.by_request.pop(request), None, "the spawner is gone", 0)
                          for request in list(self.by_request)]
            return exits
        key = self.by_pidfd.pop(fd, None)
        if key is None:
            return exits
        os.close(fd)
        job = self.running[key]
        job.proc.wait()
        left = running_in_group(job.pid)
        kill_group(job.pid)   # leftovers of the group, e.g. `sleep 100 &`
        return [(key, raw_status(job.proc.returncode), None, left)]

    def finish(self, exit: tuple) -> Finished:
        """A job whose process ended (from on_readable): its outcome and outputs."""
        return self._ended(*exit)

    def next_deadline(self) -> float:
        return min((min(j.deadline if j.deadline is not None and not j.timed_out else float("inf"),
                        j.next_check) for j in self.running.values()), default=float("inf"))

    def on_tick(self, now: float) -> None:
        if self.spawner is not None and self.running and now >= self.stop_check:
            self.stop_check = now + 1.0   # a /proc read a second while jobs run, not per loop
            if self.spawner.resume_if_stopped():
                warn(self.log, "an action stopped the spawner (SIGSTOP); it was let go on")
        for job in list(self.running.values()):
            if job.deadline is not None and now >= job.deadline and not job.timed_out:
                job.timed_out = True
                self._kill(job)
            elif now >= job.next_check and not job.over:
                # On the pool: walking a tree of 100,000 entries takes a second, and four such
                # jobs every INTERVAL on this thread kept the heartbeats from going out.
                job.next_check = float("inf")   # until this check has answered
                dirs = [os.path.join(job.jobdir, d) for d in ("sandbox", "tmp")]
                self.offload(lambda job=job, dirs=dirs: over_limits(self.limits, [job.out, job.err], dirs),
                             lambda over, _, job=job: self._checked(job, over))

    def _checked(self, job: Running, over: str | None) -> list:
        """A watch's answer: kill a job over a limit, if it still runs; else watch it again."""
        if self.running.get(job.key) is not job or job.over:
            return []
        if over:
            job.over = over
            self._kill(job)
        else:
            job.next_check = time.monotonic() + INTERVAL
        return []

    # ---- ending ---------------------------------------------------------------------------

    def kill(self, key) -> None:
        if key in self.staging:
            self.staging[key] = True
        job = self.running.get(key)
        if job is not None and not job.killed:
            job.killed = True
            self._kill(job)

    def note_full(self, now: float) -> None:
        """The disk was full now (another job's staging failed, or the loop looked): every
        action running may have lost writes that its status hides, though room is back by its end."""
        self.full_seen = now

    def pause(self, resume: bool) -> None:
        """Stop or continue every running action (its process group), as Ctrl-Z and fg do;
        time spent stopped does not count against their time limits."""
        now = time.monotonic()
        if not resume:
            self.paused_at = now
        elif self.paused_at is not None:
            for job in self.running.values():
                job.deadline = None if job.deadline is None else job.deadline + now - self.paused_at
            self.paused_at = None
        if self.spawner is not None:
            return self.spawner.pause(resume)
        for job in self.running.values():
            with contextlib.suppress(OSError):
                os.killpg(job.pid, signal.SIGCONT if resume else signal.SIGSTOP)

    def kill_all(self) -> None:
        for key in list(self.staging) + list(self.running):
            self.kill(key)

    def _kill(self, job: Running) -> None:
        if self.spawner is not None:
            self.spawner.kill(job.pid)
        else:
            kill_group(job.pid)

    def _ended(self, key, status: int | None, error: str | None, left: int = 0) -> Finished:
        job = self.running.pop(key)
        outcome = end_outcome(job, status, error, left)
        limit = explain(outcome.status, outcome.code, self.limits)
        outcome.error = outcome.error or limit
        if status is None:   # it never ran
            outcome.error += start_refused(error, self.limits)
        # Exit 0 too: a shell's status is its last command's, and an earlier one's "No space
        # left" (and its truncated output) would otherwise come back as a success, unseen.
        succeeded = outcome.status == "exited" and not outcome.code
        full = (outcome.status in ("exited", "signalled") and not (job.over or limit)
                and (disk_full(job.jobdir, as_root=self.limits.uid is None and os.geteuid() == 0,
                               below=FULL_AFTER_SUCCESS if succeeded else FULL_BELOW)
                     or (job.spawned <= self.full_seen and FULL_MEANWHILE)))
        if full:
            return self._release(job, Outcome("error", error=full))
        if outcome.status not in ("exited", "signalled") or job.over or limit:
            return self._release(job, outcome)   # cut off by a limit: what it made is junk
        sandbox = os.path.join(job.jobdir, "sandbox")
        if not sandbox_intact(sandbox):   # its outcome stands: it just made nothing we can take
            outcome.error = outcome.error or GONE
            return self._release(job, outcome)
        scanned, error = attempt(scan_outputs, sandbox, job.snapshot)
        if error is not None:
            return self._collected(job, outcome, None, error)
        found, skipped = scanned
        size, over = outputs_size(found, self.limits)
        if over:   # sparse files, which the watch saw no blocks of
            return self._release(job, Outcome("signalled", code=signal.SIGKILL, error=over))
        collect = lambda: collect_outputs(sandbox, job.snapshot, self.cache, found=(found, skipped),
                                          inputs=job.inputs)
        if size <= LIGHT and len(found) <= LIGHT_FILES:
            return self._collected(job, outcome, *attempt(collect))
        return self.offload(collect, lambda got, err: self._collected(job, outcome, got, err))

    def _collected(self, job: Running, outcome: Outcome, got, error) -> Finished:
        if error is not None:
            outcome = failure_outcome(error)
        else:
            outcome.outputs, outcome.skipped = got
        return self._release(job, outcome)

    def _release(self, job: Running, outcome: Outcome) -> Finished:
        try:
            outcome.stdout, cut_out = read_capped(job.out, self.limits.output_cap)
            outcome.stderr, cut_err = read_capped(job.err, self.limits.output_cap)
            outcome.truncated = ("stdout",) * cut_out + ("stderr",) * cut_err
        except OSError as e:
            outcome = Outcome("error", error=f"worker could not read the job's output: {e}")
            self.captures.drop(job.jobdir)
        self.untidy.append(job.jobdir)   # emptied by tidy(), after the result has gone out
        outcome.elapsed = (job.ended or time.monotonic()) - job.started
        return [(job.key, outcome)]

    def tidy(self) -> None:
        """Empty finished jobs' directories for reuse (off the path from exit to result)."""
        untidy, self.untidy = self.untidy, []
        for jobdir in untidy:
            self._give(jobdir)

    def _give(self, jobdir: str) -> None:
        # Without --user the action ran as we do: nothing of the directory was handed over.
        if self.dirs.give(jobdir, reclaim=self.limits.uid is not None):
            self.captures.empty(jobdir)
        else:   # removed, not kept: so are its files
            self.captures.drop(jobdir)

    def close(self) -> None:
        self.tidy()
        self.captures.close()
        os.close(self.devnull)

