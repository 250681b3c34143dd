"""The least a Python program that sandboxes actions does per action, with no messages at all:
what bench/floor.py runs against `make -j`. Standard library only (run as `python -I -S`).

    python -I -S bench/floor_loop.py bare|pooled|made ACTIONS PARALLEL DIR
"""

import os
import sys

ENV = {"PATH": "/usr/bin:/bin"}


def bare(actions: int, parallel: int, _: str) -> None:
    """posix_spawn `sh -c true`, `parallel` at a time, and wait: no directories, no captures."""
    running = started = 0
    for _ in range(actions):
        while running < parallel and started < actions:
            os.posix_spawn("/bin/sh", ["sh", "-c", "true"], ENV)
            running, started = running + 1, started + 1
        os.wait()
        running -= 1


def jobs(actions: int, parallel: int, base: str, pooled: bool) -> None:
    """Each action in its own directory with its stdout and stderr captured to files, checked
    after it ends (fstat of both, a scandir): directories and files kept and reused (`pooled`,
    as rake's worker does) or made and removed for each action."""
    free = [_make(f"{base}/slot{i}") for i in range(parallel)] if pooled else []
    running, started = {}, 0
    for n in range(actions):
        while len(running) < parallel and started < actions:
            slot = free.pop() if pooled else _make(f"{base}/job{started}")
            pid = os.posix_spawn("/bin/sh", ["sh", "-c", f"cd {slot[0]} && true"], ENV,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, slot[1], 1), (os.POSIX_SPAWN_DUP2, slot[2], 2)])
            running[pid], started = slot, started + 1
        pid, _ = os.wait()
        where, out, err = slot = running.pop(pid)
        os.fstat(out), os.fstat(err)
        [entry.name for entry in os.scandir(where)]
        if pooled:
            for fd in (out, err):
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, 0)
            free.append(slot)
        else:
            os.close(out), os.close(err)
            os.unlink(f"{where}/.out"), os.unlink(f"{where}/.err"), os.rmdir(where)


def _make(where: str) -> tuple:
    os.mkdir(where)
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    return where, os.open(f"{where}/.out", flags, 0o600), os.open(f"{where}/.err", flags, 0o600)


if __name__ == "__main__":
    mode, actions, parallel, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if mode == "bare":
        bare(actions, parallel, base)
    else:
        jobs(actions, parallel, base, pooled=mode == "pooled")
