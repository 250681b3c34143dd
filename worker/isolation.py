"""A PID namespace per worker: every action runs inside it, and it dies with the worker.

Process groups are not enough: a double-forked daemon leaves its group. But nothing leaves
a PID namespace, and when the namespace's first process dies the kernel kills everything
in it. That first process is our spawner (worker/spawner.py) under
`unshare --pid --fork --kill-child`, and `unshare` runs with a parent-death signal, so even
`kill -9` of the worker takes every action down. The spawner starts each action on request
(no extra program per action), so actions are never PID 1 and keep normal signals.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

TOOLS = ("setpriv", "unshare")
SPAWNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawner.py")


class SpawnerGone(OSError):
    """The namespace's first process died: no action can run or be waited for."""


@dataclass
class Started:
    id: int
    done: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    error: str | None = None
    left: int = 0             # processes it left running, killed by the spawner


class PidNamespace:
    def __init__(self, limits=None) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.holder = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork", "--kill-child",
             "--mount-proc", "--", sys.executable, "-I", "-S", SPAWNER, str(theirs.fileno()),
             *([limits.to_json()] if limits else [])],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        theirs.close()
        self.sock = mine
        self.lock = threading.Lock()
        self.jobs: dict[int, Started] = {}
        self.ids = iter(range(1, 1 << 62))
        self.dead = False
        self.sock.settimeout(10)
        try:
            hello = self.sock.recv(4096)
        except OSError:
            hello = b""
        if not hello:
            self.close()
            raise OSError(f"could not create a PID namespace: {self._stderr()}")
        self.sock.settimeout(None)
        threading.Thread(target=self._read, name="rake-spawner", daemon=True).start()

    def _stderr(self) -> str:
        if self.holder.poll() is None:
            return "no answer"
        return self.holder.stderr.read().decode(errors="replace").strip()[-300:] or "it exited"

    def start(self, argv: list[str], cwd: str, env: dict, fds: list[int], label: str) -> Started:
        job = Started(next(self.ids))
        self.jobs[job.id] = job
        request = {"op": "run", "id": job.id, "argv": argv, "cwd": cwd, "env": env, "label": label}
        self._send(request, fds)
        return job   # not waiting for the spawner's "started": wait() learns of a failure too

    def wait(self, job: Started, timeout: float | None) -> int | None:
        """The raw wait status, or None on timeout."""
        if not job.done.wait(timeout):
            return None
        self.jobs.pop(job.id, None)
        if job.status is None:
            raise SpawnerGone(f"cannot run the action: {job.error or 'the PID namespace is gone'}")
        return job.status

    def kill(self, job: Started) -> None:
        """Kill the action's process group and anything it left in the namespace."""
        try:
            self._send({"op": "kill", "id": job.id}, [])
        except OSError:
            pass

    def _send(self, request: dict, fds: list[int]) -> None:
        with self.lock:
            try:
                socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
            except OSError as e:
                raise SpawnerGone(f"the worker's PID namespace is gone: {e.strerror}") from e

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            reply = json.loads(data)
            job = self.jobs.get(reply.get("id"))
            if job is None:
                continue
            if "error" in reply:
                job.error = reply["error"]
                job.done.set()
            if "status" in reply:
                job.status, job.left = reply["status"], reply.get("left", 0)
                job.done.set()
        self.dead = True
        for job in list(self.jobs.values()):   # spawner died: nobody waits forever
            job.error = job.error or "the worker's PID namespace is gone"
            job.done.set()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        self.holder.stderr.close()


def open_namespace(mode: str, log, limits=None) -> PidNamespace | None:
    """mode 'auto' falls back to process groups where namespaces are not allowed; 'none' skips."""
    if mode == "none":
        return None
    missing = [t for t in TOOLS if shutil.which(t) is None]
    try:
        if missing:
            raise OSError(f"{', '.join(missing)} not installed (util-linux)")
        return PidNamespace(limits)
    except OSError as e:
        if mode == "pidns":
            raise
        log(f"actions run in process groups only ({e}); a killed worker may leave processes behind")
        return None
