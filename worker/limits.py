"""How far one action may go on a worker: the limits, their flags, and binding a process to them.

Standard library only: the namespace's spawner (worker/spawner.py, run with `python -I -S`)
loads this file by path and applies the limits to itself once, so every action it starts
inherits them at no cost per action. Without a namespace they are applied in each child.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import resource
import stat
from dataclasses import asdict, dataclass

MiB = 1 << 20
MAX_STREAM = 64 * MiB   # protocol.codec.MAX_FRAME: each stream goes back as one frame, so no more


@dataclass(frozen=True)
class Limits:
    max_output: int = 16 * MiB       # bytes of stdout, and of stderr, sent back; the rest is cut
    max_time: float = 3600.0         # seconds of wall time; a job's own timeout may be shorter
    max_procs: int = 512             # RLIMIT_NPROC of the action user (not enforced for root)
    # RLIMIT_AS, address space of each process: off by default, as in make, distcc and
    # icecream. Programs reserve far more than they use (a JVM's heap, AddressSanitizer's
    # shadow, V8's cage): 4 GiB made them fail on a worker and work on the embedded cluster.
    max_memory: int = 0
    max_disk: int = 4096 * MiB       # sandbox + tmp + output, checked while running; RLIMIT_FSIZE too
    max_files: int = 100_000         # entries in sandbox + tmp
    nice: int = 5                    # added to the worker's niceness
    user: str = ""                   # run actions as this user (name or uid); "" = the worker's own
    uid: int | None = None
    gid: int | None = None

    @property
    def output_cap(self) -> int:
        """Bytes of each stream read back: 0 (off) still means at most what one frame holds."""
        return min(self.max_output or MAX_STREAM, MAX_STREAM)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Limits":
        return cls(**json.loads(text))


NONE = Limits(max_output=0, max_time=0.0, max_procs=0, max_memory=0, max_disk=0, max_files=0, nice=0)


# Each limit flag's default, in the flag's own unit (KiB, MiB), as `add_arguments` sets it.
DEFAULT_FLAGS = {"max_output": Limits.max_output >> 10, "max_time": Limits.max_time, "max_procs": Limits.max_procs,
                 "max_memory": Limits.max_memory >> 20, "max_disk": Limits.max_disk >> 20, "nice": Limits.nice,
                 "user": Limits.user}


def add_arguments(p) -> None:
    """The rake-worker flags; 0 turns a limit off (README, docs/security.md)."""
    d = Limits()
    p.add_argument("--max-output", type=int, default=d.max_output >> 10, metavar="KIB",
                   help=f"stdout and stderr each: KiB sent back, the rest is cut (default {d.max_output >> 10})")
    p.add_argument("--max-time", type=float, default=d.max_time, metavar="S",
                   help=f"wall-time limit of an action in seconds (default {d.max_time:g})")
    p.add_argument("--max-procs", type=int, default=d.max_procs, metavar="N",
                   help=f"processes of the action user (RLIMIT_NPROC; only with --user; default {d.max_procs})")
    p.add_argument("--max-memory", type=int, default=d.max_memory >> 20, metavar="MiB",
                   help="address space of each action process (RLIMIT_AS; default 0: off)")
    p.add_argument("--max-disk", type=int, default=d.max_disk >> 20, metavar="MiB",
                   help=f"disk one action may fill: sandbox, tmp and output (default {d.max_disk >> 20})")
    p.add_argument("--nice", type=int, default=d.nice, metavar="N",
                   help=f"run actions at this much lower CPU priority, 0..19 (default {d.nice})")
    p.add_argument("--user", default="", metavar="USER",
                   help="run actions as this unprivileged user (name or uid) when the worker is root")


def from_args(args) -> Limits:
    """Limits from parsed flags; ValueError with a one-line reason for a bad value."""
    if not math.isfinite(args.max_time):
        raise ValueError("--max-time must be a number of seconds")
    for flag, most in (("max_output", MAX_STREAM >> 10), ("max_time", 10 ** 9), ("max_procs", 1 << 22),
                       ("max_memory", 1 << 30), ("max_disk", 1 << 30)):
        if not 0 <= getattr(args, flag) <= most:   # in bytes, the system's limits are 64-bit
            raise ValueError(f"--{flag.replace('_', '-')} must be 0 (off) to {most}, got {getattr(args, flag)}")
    if not 0 <= args.nice <= 19:
        raise ValueError(f"--nice must be 0..19, got {args.nice}")
    if 0 < args.max_memory < 64:
        raise ValueError("--max-memory below 64 MiB leaves no room to start a program")
    uid = gid = None
    if args.user:
        uid, gid = _lookup(args.user)
        if uid == 0:
            raise ValueError("--user must be an unprivileged user, not root")
        if os.geteuid() != 0:
            raise ValueError("--user needs the worker to run as root")
    return Limits(max_output=args.max_output << 10, max_time=args.max_time, max_procs=args.max_procs,
                  max_memory=args.max_memory << 20, max_disk=args.max_disk << 20, nice=args.nice,
                  user=args.user, uid=uid, gid=gid)


def _lookup(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        if user.isdigit():
            return int(user), int(user)   # a bare uid needs no entry in /etc/passwd
        raise ValueError(f"--user {user!r}: no such user") from None


def warnings(limits: Limits, defaults: Limits = Limits()) -> list[str]:
    """What the operator should know about limits that cannot hold as configured: only those
    they asked for (the default process limit, unenforced without --user, is in the docs and
    the info log; a warning at every start would be noise to users who cannot use --user)."""
    if limits.max_procs and limits.uid is None and limits.max_procs != defaults.max_procs:
        return ["--max-procs is enforced only with --user (a process count is per user, and "
                "root is exempt): run actions as a dedicated unprivileged user"]
    return []


def apply(limits: Limits) -> None:
    """Bind this process, and everything it starts, to `limits`; then drop to the action user.

    Called once in the spawner, or in each child between fork and exec without a namespace.
    """
    if limits.nice:
        os.nice(limits.nice)
    # The process count is per user: only a dedicated action user makes it count the actions.
    procs = limits.max_procs if limits.uid is not None else 0
    for which, value in ((resource.RLIMIT_AS, limits.max_memory),
                         (resource.RLIMIT_FSIZE, limits.max_disk), (resource.RLIMIT_NPROC, procs)):
        if value:
            _lower(which, value)
    _lower(resource.RLIMIT_CORE, 0)   # a crashing action does not fill the disk with cores
    if limits.uid is not None:
        os.setgroups([])
        os.setgid(limits.gid)
        os.setuid(limits.uid)   # real, effective and saved: there is no way back


def _lower(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def hand_over(jobdir: str, limits: Limits) -> bool:
    """Give the job's sandbox and tmp to the action user; the job directory stays ours.

    The job directory itself must not be theirs: they could swap `sandbox` for a symlink and
    have the worker empty or collect some other directory as root.
    """
    if limits.uid is None:
        return False
    from rake_common.tree import walk   # here: the spawner loads this module without the package
    os.chmod(jobdir, 0o711)
    for sub in ("sandbox", "tmp"):
        top = os.path.join(jobdir, sub)
        for dirpath, dirnames, filenames in walk(top):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), limits.uid, limits.gid)
        os.lchown(top, limits.uid, limits.gid)
    return True


def unreachable(path: str, limits: Limits) -> str:
    """Why the action user could not get into `path` (every parent needs search permission)."""
    if limits.uid is None:
        return ""
    path = os.path.abspath(path)
    while True:
        st = os.stat(path)
        if not (st.st_mode & stat.S_IXOTH or (st.st_uid == limits.uid and st.st_mode & stat.S_IXUSR)
                or (st.st_gid == limits.gid and st.st_mode & stat.S_IXGRP)):
            return f"user {limits.user} cannot enter {path} (it needs search permission: chmod o+x)"
        parent = os.path.dirname(path)
        if parent == path:
            return ""
        path = parent
