"""Private directories under the system temp dir that outlive a killed program only until
the next one starts: each holds a lock file, flocked while its program lives."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile

from rake_common.tree import remove_tree


STAGING = ".rake-new-"   # a directory's name until it is locked: no sweep can take it then


def sweep(prefix: str, lock: str, base: str | None = None) -> None:
    """Remove the `prefix*` directories in `base` (the temp dir) whose program is gone
    (kill -9, a crash): their lock file is there and no longer locked. A lock, not a pid:
    the same directory may be seen from another PID namespace or host (NFS)."""
    base = base or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            _remove_if_abandoned(os.path.join(base, name), lock)


def locked_tempdir(prefix: str, lock: str, base: str | None = None) -> tuple[str, int]:
    """(a new directory in `base`, the descriptor holding its lock), after a sweep. It is
    locked before it takes its `prefix` name, so no other program's sweep can take it.
    Absolute: with TMPDIR=. mkdtemp answers a relative "./x"."""
    base = base or tempfile.gettempdir()
    sweep(prefix, lock, base)
    staging = os.path.abspath(tempfile.mkdtemp(prefix=STAGING, dir=base))
    fd = -1
    try:
        fd = os.open(os.path.join(staging, lock), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        final = os.path.join(os.path.dirname(staging), prefix + os.path.basename(staging)[len(STAGING):])
        os.rename(staging, final)
    except BaseException:   # an interrupt too: no sweep knows the staging name
        if fd >= 0:
            os.close(fd)
        remove_tree(staging)
        raise
    return final, fd


def _remove_if_abandoned(path: str, lock: str) -> None:
    try:
        fd = os.open(os.path.join(path, lock), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:   # no lock file: not ours to judge, but one left empty (by a version
        with contextlib.suppress(OSError):   # before the locks) has nothing to lose
            os.rmdir(path)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # its program lives
    finally:
        os.close(fd)
    remove_tree(path)
