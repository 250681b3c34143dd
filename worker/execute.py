"""Run one job: make its sandbox, run its command through /bin/sh, collect the results."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from worker.limits import NONE, Limits, apply, hand_over
from worker.sandbox import OutputFile, StagingError, collect_outputs, refingerprint, stage_inputs
from worker.watch import explain, read_capped, supervise, time_limit

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Outcome:
    status: str                 # exited | signalled | cancelled | timeout | error
    code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    outputs: list[OutputFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    elapsed: float = 0.0
    truncated: tuple = ()       # "stdout", "stderr": cut at the worker's --max-output


class ProcessRegistry:
    """How to kill each running job, so the loop thread can stop one a runner thread waits on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._killers: dict[object, Callable[[], None]] = {}
        self._killed: set[object] = set()

    def add(self, key: object, kill: Callable[[], None]) -> None:
        with self._lock:
            self._killers[key] = kill
            if key in self._killed:
                kill()

    def remove(self, key: object) -> bool:
        """Forget `key`; True if it was killed on request."""
        with self._lock:
            self._killers.pop(key, None)
            if key in self._killed:
                self._killed.discard(key)
                return True
            return False

    def kill(self, key: object) -> None:
        with self._lock:
            self._killed.add(key)
            kill = self._killers.get(key)
        if kill is not None:
            kill()

    def kill_all(self) -> None:
        with self._lock:
            keys = list(self._killers)
        for key in keys:
            self.kill(key)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class JobDirs:
    """Job directories (`job-X/sandbox` and `job-X/tmp`) under a root, emptied after each job
    and handed to the next: creating and removing directories is most of a short job's cost
    on some disks. Every sandbox is empty when a job gets it, as if new."""

    def __init__(self, root: str, reuse: bool = True):
        self.root, self.reuse = root, reuse
        self.free: list[str] = []
        self.lock = threading.Lock()

    def take(self) -> str:
        with self.lock:
            if self.free:
                return self.free.pop()
        jobdir = tempfile.mkdtemp(prefix="job-", dir=self.root)
        os.mkdir(os.path.join(jobdir, "sandbox"), 0o700)
        os.mkdir(os.path.join(jobdir, "tmp"), 0o700)
        return jobdir

    def give(self, jobdir: str) -> None:
        """Empty it for the next job; a directory that will not empty is removed instead."""
        try:
            if not self.reuse:
                raise OSError("not reused")
            for sub in ("sandbox", "tmp"):
                _empty(os.path.join(jobdir, sub))
            os.chmod(os.path.join(jobdir, "sandbox"), 0o700)
        except OSError:
            remove_tree(jobdir)
            return
        with self.lock:
            self.free.append(jobdir)


def _empty(directory: str) -> None:
    names = os.listdir(directory)
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)
        else:
            os.unlink(path)
    if os.listdir(directory):
        raise OSError(f"{directory} did not empty")


def remove_tree(path: str) -> None:
    """rmtree that also gets through directories a job made read-only (chmod 500 dir)."""
    def make_writable_and_retry(func, failed, exc):
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, onerror=make_writable_and_retry)
            else:
                func(failed)
        except OSError:
            pass
    shutil.rmtree(path, onerror=make_writable_and_retry)


def job_environment(sandbox: str, tmpdir: str, worker: str, job: str) -> dict[str, str]:
    """The documented, minimal environment of a remote action (docs/architecture.md)."""
    return {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": sandbox, "PWD": sandbox, "TMPDIR": tmpdir, "SHELL": "/bin/sh",
        "LANG": "C.UTF-8", "RAKE_WORKER": worker, "RAKE_JOB": job,
    }


def job_label(key) -> str:
    """A job's name in RAKE_JOB: unique on its worker, safe in an environment variable."""
    return "-".join(map(str, key)) if isinstance(key, tuple) else str(key)


def run_job(key, command: str, files: list[tuple[str, int, bytes | str]], root, worker: str,
            timeout: float | None, registry: ProcessRegistry, namespace=None, cache=None,
            limits: Limits = NONE) -> Outcome:
    """Stage, run and collect one job in an empty sandbox under `root` (a directory, or a
    JobDirs pool); never raises."""
    start = time.monotonic()
    dirs = root if isinstance(root, JobDirs) else JobDirs(root, reuse=False)
    try:
        jobdir = dirs.take()
    except OSError as e:
        return Outcome("error", error=f"worker could not make a sandbox: {e}")
    sandbox, tmpdir = os.path.join(jobdir, "sandbox"), os.path.join(jobdir, "tmp")
    try:
        snapshot = stage_inputs(sandbox, files)
        if hand_over(jobdir, limits):
            snapshot = refingerprint(sandbox, snapshot)   # the new owner changed their ctime
        env = job_environment(sandbox, tmpdir, worker, job_label(key))
        outcome = run_shell(key, command, sandbox, tmpdir, env, timeout, registry, namespace, limits)
        if outcome.status in ("exited", "signalled"):
            outcome.outputs, outcome.skipped = collect_outputs(sandbox, snapshot, cache)
    except StagingError as e:
        outcome = Outcome("error", error=str(e))
    except OSError as e:
        outcome = Outcome("error", error=f"worker could not run the job: {e}")
    finally:
        dirs.give(jobdir)
    outcome.elapsed = time.monotonic() - start
    return outcome


def run_shell(key, command: str, cwd: str, tmpdir: str, env: dict, timeout: float | None,
              registry: ProcessRegistry, namespace=None, limits: Limits = NONE) -> Outcome:
    """Run `command` with /bin/sh in its own session; output is captured, not streamed.

    Output goes to files, not pipes: no deadlock however much a command writes. Inside a
    worker's PID namespace, whatever the command left running is killed when it ends.
    """
    argv = ["/bin/sh", "-c", command]
    timeout, over_time = time_limit(timeout, limits)
    with tempfile.TemporaryFile(dir=tmpdir) as out, tempfile.TemporaryFile(dir=tmpdir) as err:
        wait, left = _spawn_in(namespace, argv, cwd, env, out, err, key, registry) if namespace \
            else _spawn_here(argv, cwd, env, out, err, key, registry, limits)
        try:
            status, why = supervise(wait, timeout, limits, [out, err], [cwd, tmpdir])
            if status is None:
                registry.kill(key)
                status = wait(None)
        finally:
            killed = registry.remove(key)
        outcome = Outcome("exited")
        outcome.stdout, cut_out = read_capped(out, limits.max_output)
        outcome.stderr, cut_err = read_capped(err, limits.max_output)
        outcome.truncated = ("stdout",) * cut_out + ("stderr",) * cut_err
    rc = os.waitstatus_to_exitcode(status)
    if why == "time":
        outcome.status, outcome.code, outcome.error = "timeout", signal.SIGKILL, over_time
    elif why:
        outcome.status, outcome.code, outcome.error = "signalled", signal.SIGKILL, why
    elif killed:
        outcome.status = "cancelled"
    elif left():
        outcome.status, outcome.code = "signalled", signal.SIGKILL
        outcome.error = f"killed: it left processes running when it ended (its exit status was {rc})"
    elif rc < 0:
        outcome.status, outcome.code = "signalled", -rc
    else:
        outcome.code = rc
    outcome.error = outcome.error or explain(outcome.status, outcome.code, limits)
    return outcome


def _spawn_here(argv, cwd, env, out, err, key, registry, limits=NONE):
    """A plain child in its own session: the process group is the whole job."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=True, preexec_fn=None if limits == NONE else lambda: apply(limits))
    registry.add(key, lambda: _killpg(proc.pid))
    left = [0]

    def wait(timeout):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        left[0] = _running_in_group(proc.pid)
        _killpg(proc.pid)  # leftovers of the group, e.g. `sleep 100 &`
        return _raw_status(proc.returncode)
    return wait, lambda: left[0]


def _running_in_group(pgid: int) -> int:
    """Live (not zombie) processes of a process group; the usual answer costs one kill(2)."""
    try:
        os.killpg(pgid, 0)
    except OSError:
        return 0
    count = 0
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        count += fields[0] != "Z" and int(fields[2]) == pgid
    return count


def _spawn_in(namespace, argv, cwd, env, out, err, key, registry):
    """A child of the namespace's spawner, which kills the job's leftovers when it ends."""
    with open(os.devnull, "rb") as devnull:
        job = namespace.start(argv, cwd, env, [devnull.fileno(), out.fileno(), err.fileno()],
                              env.get("RAKE_JOB", ""))
    registry.add(key, lambda: namespace.kill(job))
    return (lambda timeout: namespace.wait(job, timeout)), (lambda: job.left)


def _raw_status(returncode: int) -> int:
    """Back from Popen's returncode to a wait status, so both paths decode alike."""
    return (-returncode & 0x7F) if returncode < 0 else (returncode & 0xFF) << 8
