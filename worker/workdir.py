"""A worker's working directory: locked while in use, and cleared of a dead worker's leftovers."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import tempfile

from rake_common.tempdirs import sweep
from rake_common.tree import remove_tree

LOCK = ".rake-worker.lock"
PREFIX = "rake-worker-"
JOB_DIR = re.compile(r"job-[a-z0-9_]{8}")   # as tempfile.mkdtemp(prefix="job-") names them


class WorkdirBusy(Exception):
    """Another live worker holds this directory."""


def claim(path: str) -> int:
    """Lock `path` for this worker (held until exit) and remove sandboxes left by a dead one.
    Only a directory a worker used before (it holds our lock file) is cleared, and only of
    what can be nothing but a job directory: `job-*` named otherwise, or holding anything
    besides `sandbox` and `tmp`, is the user's."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "it is not a directory")
    os.makedirs(path, mode=0o700, exist_ok=True)
    ours = os.path.exists(os.path.join(path, LOCK))
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirBusy(f"{path} is in use by another rake-worker") from None
    for name in os.listdir(path) if ours else ():
        if is_job_dir(path, name):
            remove_tree(os.path.join(path, name))
    return fd


def is_job_dir(parent: str, name: str) -> bool:
    """Whether `name` is a job directory as worker/execute.py makes them."""
    if not JOB_DIR.fullmatch(name):
        return False
    try:
        full = os.path.join(parent, name)
        return stat.S_ISDIR(os.lstat(full).st_mode) and set(os.listdir(full)) <= {"sandbox", "tmp"}
    except OSError:
        return False


def fresh_workdir() -> str:
    """A new private directory under the system temp dir, after removing dead workers' ones
    (claim() locks it)."""
    sweep(PREFIX, LOCK)
    # Absolute: with TMPDIR=. mkdtemp answers "./rake-worker-x", which the spawner would
    # resolve against the sandbox it last started an action in.
    return os.path.abspath(tempfile.mkdtemp(prefix=PREFIX))


def noexec_warning(path: str, hint: str) -> str:
    """What to tell the user if `path` is on a filesystem mounted noexec (a hardened /tmp):
    actions could not run what they build or receive there ("Permission denied", 126)."""
    try:
        if not os.statvfs(path).f_flag & os.ST_NOEXEC:
            return ""
    except OSError:
        return ""
    return f"{path} is on a filesystem mounted noexec: actions cannot run programs they build or receive there ({hint})"
