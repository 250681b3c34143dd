"""What a job runs in and how it ends: its reusable directories, its environment, its Outcome."""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import threading
from dataclasses import dataclass, field

from rake_common.tree import empty_tree, remove_tree
from worker.sandbox import OutputFile, StagingError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Outcome:
    status: str                 # exited | signalled | cancelled | timeout | error | withdrawn (never started)
    code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    outputs: list[OutputFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    elapsed: float = 0.0
    truncated: tuple = ()       # "stdout", "stderr": cut at the worker's --max-output


class JobDirs:
    """Job directories (`job-X/sandbox` and `job-X/tmp`) under a root, emptied after each job
    and handed to the next: creating and removing directories is most of a short job's cost
    on some disks. Every sandbox is empty when a job gets it, as if new."""

    def __init__(self, root: str, reuse: bool = True):
        self.root, self.reuse = root, reuse
        self.free: list[str] = []
        self.made: set[str] = set()   # every one not removed yet: removed when the worker stops
        self.lock = threading.Lock()

    def take(self) -> str:
        with self.lock:
            if self.free:
                return self.free.pop()
        try:
            jobdir = tempfile.mkdtemp(prefix="job-", dir=self.root)
        except FileNotFoundError:   # the work directory was removed under us (a tmp cleaner)
            os.makedirs(self.root, mode=0o711, exist_ok=True)   # 0711: an action user passes through
            jobdir = tempfile.mkdtemp(prefix="job-", dir=self.root)
        with self.lock:
            self.made.add(jobdir)
        os.mkdir(os.path.join(jobdir, "sandbox"), 0o700)
        os.mkdir(os.path.join(jobdir, "tmp"), 0o700)
        return jobdir

    def give(self, jobdir: str, reclaim: bool = True) -> bool:
        """Empty it for the next job (True); one that will not empty is removed instead.
        `reclaim`: its sandbox and tmp were handed to an action user, and are owned by us again first."""
        try:
            if not self.reuse:
                raise OSError("not reused")
            for sub in ("sandbox", "tmp"):
                path = os.path.join(jobdir, sub)
                if reclaim and os.geteuid() == 0:
                    # Back to us before emptying: a process the action user left running
                    # must not plant a link here for the next job's (root) staging to follow.
                    os.lchown(path, 0, 0)
                _empty(path)
        except OSError:
            remove_tree(jobdir)
            with self.lock:
                self.made.discard(jobdir)
            return False
        with self.lock:
            self.free.append(jobdir)
        return True

    def remove_all(self) -> None:
        """The worker stops (nothing runs any more): leave no job directory in its workdir."""
        with self.lock:
            made, self.made, self.free = list(self.made), set(), []
        for jobdir in made:
            remove_tree(jobdir)


def _empty(directory: str) -> None:
    """Empty a job's sandbox or tmp for the next job. One the action replaced by a symbolic
    link (`rm -rf "$PWD"; ln -s ~ "$PWD"`) is refused, not followed: the job directory is
    then removed, never emptying or handing on the link's target. Opened once, and all done
    through that descriptor: a leftover the kill missed cannot swap a link in meanwhile."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotADirectoryError(errno.ENOTDIR, "replaced by the action", directory) from e
        raise
    try:
        os.fchmod(fd, 0o700)   # whatever the action made of it
        if not os.listdir(fd):
            return   # the usual case
        empty_tree(fd)
        if os.listdir(fd):
            raise OSError(f"{directory} did not empty")
    finally:
        os.close(fd)


def job_environment(sandbox: str, tmpdir: str, worker: str, job: str) -> dict[str, str]:
    """The documented, minimal environment of a remote action (docs/architecture.md). HOME is
    the job's private temporary directory, not its sandbox: what tools keep under ~ (git's
    config, caches) must not come back into the user's project as outputs."""
    return {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": tmpdir, "PWD": sandbox, "TMPDIR": tmpdir, "SHELL": "/bin/sh",
        "LANG": "C.UTF-8", "RAKE_WORKER": worker, "RAKE_JOB": job,
    }


def job_label(key) -> str:
    """A job's name in RAKE_JOB: unique on its worker, safe in an environment variable."""
    return "-".join(map(str, key)) if isinstance(key, tuple) else str(key)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def failure_outcome(error: BaseException) -> Outcome:
    """The Outcome of a job whose staging, start or collecting raised `error`."""
    if isinstance(error, StagingError):
        return Outcome("error", error=str(error))
    if isinstance(error, OSError):
        return Outcome("error", error=f"worker could not run the job: {error}")
    return Outcome("error", error=f"worker bug: {type(error).__name__}: {error}")


def raw_status(returncode: int) -> int:
    """Back from Popen's returncode to a wait status, so both paths decode alike."""
    return (-returncode & 0x7F) if returncode < 0 else (returncode & 0xFF) << 8


def attempt(fn, *args) -> tuple:
    """(result, None), or (None, the exception): a failure becomes the job's, never the loop's."""
    try:
        return fn(*args), None
    except Exception as e:   # reported as the job's failure, never raised into the loop
        return None, e


def inline(fn, then):
    """An offload that runs fn here and now."""
    return then(*attempt(fn))
