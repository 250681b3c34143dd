"""Watching a running action against the worker's limits: wall time, disk, files, output size,
and what it left running. The worker's loop (worker/jobs.py) calls these every INTERVAL."""

from __future__ import annotations

import errno
import os
import signal
from typing import BinaryIO

from worker.limits import Limits

INTERVAL = 0.5   # seconds between checks: how far a fast writer can overshoot the disk limit
FULL_BELOW = 1 << 20   # bytes free under which the disk is full
# After an exit 0: a write that failed for room left a few blocks at most, not most of a MiB
# (an action whose complete outputs left 900 KiB free succeeded).
FULL_AFTER_SUCCESS = 64 << 10


def time_limit(job_timeout: float | None, limits: Limits) -> tuple[float | None, str]:
    """The effective wall-time limit (the smaller one wins), and the reason to give if it is ours."""
    ours = limits.max_time or None
    if ours is None or (job_timeout is not None and job_timeout <= ours):
        return job_timeout, ""
    return ours, f"killed: time limit of {ours:g} s (worker --max-time)"


def over_limits(limits: Limits, streams: list[BinaryIO], dirs: list[str]) -> str:
    """Why the action is over its disk or file-count limit, or ""."""
    used = sum(os.fstat(s.fileno()).st_size for s in streams)
    size, count = usage(dirs, limits.max_files or None)
    if limits.max_files and count > limits.max_files:
        return f"killed: file limit: more than {limits.max_files} files in the sandbox"
    if limits.max_disk and used + size > limits.max_disk:
        return f"killed: disk limit: sandbox, tmp and output passed {_mib(limits.max_disk)}"
    return ""


def outputs_size(found: list, limits: Limits) -> tuple[int, str]:
    """(bytes, why that is over the disk limit or "") of the outputs a scan found."""
    size = sum(st.st_size for _, _, st in found)
    over = limits.max_disk and size > limits.max_disk
    return size, f"killed: disk limit: its outputs take {_mib(size)}, over {_mib(limits.max_disk)}" if over else ""


def usage(dirs: list[str], stop_after: int | None = None) -> tuple[int, int]:
    """(bytes allocated, entries) under `dirs`, symlinks not followed; stops counting early.
    Blocks, not sizes: a sparse scratch file in tmp costs no disk. What sparse outputs cost
    once returned (all of their size) is checked when they are collected (outputs_size)."""
    size = count = 0
    todo = list(dirs)
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    count += 1
                    if stop_after is not None and count > stop_after:
                        return size, count
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue   # gone already
                    size += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
        except OSError:
            continue
    return size, count


def read_capped(stream: BinaryIO, cap: int) -> tuple[bytes, bool]:
    """The first `cap` bytes of a captured stream (all of it when cap is 0), and whether cut.
    Most actions write nothing: that costs one fstat."""
    stream.flush()   # ours writes nothing (the action writes to the file), but a caller's may
    fd = stream.fileno()
    size = os.fstat(fd).st_size
    if not size:
        return b"", False
    want = min(size, cap) if cap else size
    data = os.pread(fd, want, 0)
    return data, size > len(data)


FULL_MEANWHILE = "the worker's disk was full while the action ran"


def out_of_space(error) -> bool:
    """Whether a job's staging failed for want of room: its cause, an OSError ENOSPC/EDQUOT."""
    cause = getattr(error, "__cause__", None) or error
    return isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: str, as_root: bool = False, below: int = FULL_BELOW) -> str:
    """Why an action that ended may have failed for the worker's disk, not its own fault
    ("" if the disk has room): then it is an error, run again elsewhere, rather than a
    failure blamed on the command, with its message lost (stdout and stderr are on that
    disk too) and its half-written outputs returned. Asked after an exit 0 too: a shell's
    status is its last command's, so `head ... > big; touch done` on a full disk exits 0."""
    try:
        st = os.statvfs(path)
    except OSError:
        return ""
    # Root may write into the blocks reserved for it (5% on ext4), other users may not.
    free = (st.f_bfree if as_root else st.f_bavail) * st.f_frsize
    if as_root and free >= below and st.f_bavail * st.f_frsize < below and not _can_allocate(path, below):
        free = 0   # f_bfree counts ext4's reserved clusters (up to 16 MiB), which root cannot use either
    if free >= below:
        return ""
    # Named, as the disk may not be the one a user thinks of: the embedded local cluster's is
    # TMPDIR's (a small tmpfs, often), not the project's.
    return f"the worker's disk is full ({free >> 10} KiB free on {_mount_point(path)})"


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):   # "/" is one: this ends
        path = os.path.dirname(path)
    return path


def _can_allocate(path: str, size: int) -> bool:
    """Whether `size` bytes can be had in `path` now (by this process)."""
    try:
        fd = os.open(path, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except OSError:
        return True   # cannot tell: as statvfs says
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        return e.errno != errno.ENOSPC
    finally:
        os.close(fd)
    return True


def explain(status: str, code: int, limits: Limits) -> str:
    """The limit behind a death by signal, when the signal says which one. The shell reports
    a child killed by signal N as exit status 128+N, so that counts too."""
    sig = code if status == "signalled" else code - 128 if status == "exited" else 0
    if sig == signal.SIGXFSZ and limits.max_disk:
        return f"killed: file size limit of {_mib(limits.max_disk)} (worker --max-disk; its stdout and stderr count as files)"
    return ""


def start_refused(error: str | None, limits: Limits) -> str:
    """What to add when an action could not even start for want of processes: with --user,
    every action's processes count against that user's one --max-procs (a fork bomb's too)."""
    if limits.uid is not None and limits.max_procs and error and os.strerror(errno.EAGAIN) in error:
        return f" (the action user's processes, other actions' included, are limited to {limits.max_procs}: --max-procs)"
    return ""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def running_in_group(pgid: int) -> int:
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
