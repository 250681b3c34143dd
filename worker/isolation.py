"""A PID namespace per worker: every action runs inside it, and it dies with the worker.

Process groups are not enough: a double-forked daemon leaves its group. But nothing leaves
a PID namespace, and when the namespace's first process dies the kernel kills everything
in it. That first process is `sleep infinity` under `unshare --kill-child`, and `unshare`
runs with a parent-death signal, so even `kill -9` of the worker takes every action down.
Actions enter with `nsenter`, so they are never PID 1 and keep normal signal behaviour.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

TOOLS = ("setpriv", "unshare", "nsenter")


class PidNamespace:
    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork",
             "--kill-child", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self.init_pid = self._find_init()
        self.ns = os.readlink(f"/proc/{self.init_pid}/ns/pid")

    def _find_init(self) -> int:
        path = f"/proc/{self.holder.pid}/task/{self.holder.pid}/children"
        for _ in range(200):   # bounded: about 2 s
            try:
                with open(path) as fh:
                    kids = fh.read().split()
            except OSError:
                kids = []
            if kids:
                return int(kids[0])
            if self.holder.poll() is not None:
                break
            time.sleep(0.01)
        err = self.holder.stderr.read().decode(errors="replace").strip() if self.holder.poll() is not None else ""
        self.close()
        raise OSError(f"could not create a PID namespace{': ' + err if err else ''}")

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", "--target", str(self.init_pid), "--pid", "--", *argv]

    def kill_job(self, job: str) -> int:
        """Kill processes left in the namespace by job `job` (found by their RAKE_JOB)."""
        # Whatever outlives its shell is re-parented to the namespace's first process, so an
        # empty list of its children (one small read) means there is nothing to look for.
        try:
            with open(f"/proc/{self.init_pid}/task/{self.init_pid}/children") as fh:
                if not fh.read().split():
                    return 0
        except OSError:
            pass
        marker = f"RAKE_JOB={job}\0".encode()
        killed = 0
        for pid in _pids():
            if pid == self.init_pid or not self._inside(pid):
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if marker not in fh.read() + b"\0":
                        continue
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                continue
        return killed

    def _inside(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/ns/pid") == self.ns
        except OSError:
            return False

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        self.holder.stderr.close()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def open_namespace(mode: str, log) -> PidNamespace | None:
    """mode 'auto' falls back to process groups where namespaces are not allowed; 'none' skips."""
    if mode == "none":
        return None
    missing = [t for t in TOOLS if shutil.which(t) is None]
    try:
        if missing:
            raise OSError(f"{', '.join(missing)} not installed (util-linux)")
        return PidNamespace()
    except OSError as e:
        if mode == "pidns":
            raise
        log(f"actions run in process groups only ({e}); a killed worker may leave processes behind")
        return None
