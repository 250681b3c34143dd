"""The worker's spawner, in a PID namespace per worker where allowed: every action runs
inside it, and it dies with the worker.

Process groups are not enough: a double-forked daemon leaves its group. But nothing leaves
a PID namespace, and when the namespace's first process dies the kernel kills everything
in it. That first process is our spawner (worker/spawner.py) under
`unshare --pid --fork --kill-child`, and `unshare` runs with a parent-death signal, so even
`kill -9` of the worker takes every action down. The spawner starts each action on request
(no extra program per action), so actions are never PID 1 and keep normal signals.

Where namespaces are not allowed (not root, no util-linux) the same spawner runs as a plain
child: it still applies the limits once rather than forking a Python child per action, adopts
what actions leave, and kills them all when the worker's socket closes (only a `kill -9` of
the spawner itself leaves them running).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

from rake_common.logsetup import warn

TOOLS = ("setpriv", "unshare")
SPAWNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawner.py")


class SpawnerGone(OSError):
    """The namespace's first process died: no action can run or be waited for."""


class Spawner:
    """The worker's end of the spawner's socket. The worker's loop polls `fileno()` and
    calls `read_replies()`; requests are sent from that same thread."""

    def __init__(self, limits=None, namespace: bool = True) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # A request carries the command (up to 128 Ki characters, 4 bytes each in UTF-8) in
        # one datagram, which must fit the send buffer.
        try:   # past the system's cap when we may (root), else as much as it allows
            mine.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), 4 << 20)
        except OSError:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        argv = [sys.executable, "-I", "-S", "-X", "utf8", SPAWNER, str(theirs.fileno()), *([limits.to_json()] if limits else [])]
        if namespace:
            argv = ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork", "--kill-child",
                    "--mount-proc", "--", *argv]
        self.namespace = namespace
        self.holder = subprocess.Popen(
            argv,
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        theirs.close()
        self.sock = mine
        self.ids = iter(range(1, 1 << 62))
        self.replies = bytearray(1 << 16)   # read into, not allocated per reply
        self.dead = False
        self.sock.settimeout(10)
        try:
            hello = self.sock.recv(4096)
        except OSError:
            hello = b""
        if not hello:
            self.sock.close()
            why = self._stderr()   # before close(), which closes the pipe it is read from
            self.close()
            raise OSError(f"could not {'create a PID namespace' if namespace else 'start the spawner'}: {why}")
        self.sock.setblocking(False)

    def _stderr(self) -> str:
        try:   # it closed its end or said nothing for 10 s: either way it is on its way out
            self.holder.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "no answer"
        return self.holder.stderr.read().decode(errors="replace").strip()[-300:] or "it exited"

    def fileno(self) -> int:
        return self.sock.fileno()

    def resume_if_stopped(self) -> bool:
        """Without a namespace to shield it, an action running as our user can stop its
        spawner (`kill -STOP $PPID`), which would then never reap, report or kill anything
        again: no timeout would fire. Let it go on; True if it was stopped."""
        if self.namespace:   # PID 1 of a namespace gets no SIGSTOP from inside it
            return False
        try:
            with open(f"/proc/{self.holder.pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if state not in (b"T", b"t"):
                return False
            os.kill(self.holder.pid, signal.SIGCONT)
        except (OSError, IndexError):
            return False
        return True

    def start(self, argv: list[str], cwd: str, env: dict, fds: list[int], label: str,
              umask: int | None = None) -> int:
        """Ask for the action to be started; its end (or failure) comes from read_replies()."""
        request = next(self.ids)
        self._send({"op": "run", "id": request, "argv": argv, "cwd": cwd, "env": env, "label": label,
                    "umask": umask}, fds)
        return request

    def kill(self, request: int) -> None:
        """Kill the action's process group and anything it left."""
        try:
            self._send({"op": "kill", "id": request}, [])
        except OSError:
            pass

    def pause(self, resume: bool) -> None:
        """Stop (SIGSTOP) or continue every running action's process group."""
        try:
            self._send({"op": "pause", "resume": resume}, [])
        except OSError:
            pass

    def _send(self, request: dict, fds: list[int]) -> None:
        try:
            # Datagrams are small and the spawner reads at once: a full buffer means it is stuck.
            self.sock.settimeout(10)
            # surrogateescape: a path's bytes that are not UTF-8 (a workdir under /tmp/\xff)
            # travel as they are; the spawner reads them back the same way.
            data = json.dumps(request, ensure_ascii=False).encode("utf-8", "surrogateescape")
            socket.send_fds(self.sock, [data], fds)
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise OSError(e.errno, "the command is too long to start") from e
            raise SpawnerGone(f"the worker's spawner is gone: {e.strerror or e}") from e
        finally:
            self.sock.setblocking(False)

    def read_replies(self) -> list[tuple[int, int | None, str | None, int]]:
        """(request id, raw wait status or None, error or None, processes it left running and
        the spawner killed) of each action that ended."""
        ended = []
        for _ in range(4096):
            try:
                size = self.sock.recv_into(self.replies)
            except BlockingIOError:
                break
            except OSError:
                size = 0
            if not size:
                self.dead = True
                break
            reply = json.loads(self.replies[:size])
            if "error" in reply or "status" in reply:
                ended.append((reply.get("id"), reply.get("status"), reply.get("error"), reply.get("left", 0)))
        return ended

    def close(self) -> None:
        """The spawner leaves when its socket closes, killing whatever still runs (in a
        namespace, the kernel then kills anything else in it). Waiting for that (briefly) rather than killing it at once lets
        its CPU time and its actions' be counted as ours (getrusage of our children)."""
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.holder.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.holder.kill()
        self.holder.wait()
        self.holder.stderr.close()


def open_spawner(mode: str, log, limits=None) -> Spawner | None:
    """The worker's spawner: in a PID namespace with 'pidns' (or an error), and with 'auto'
    where allowed; otherwise without one. None only if even that cannot start: actions are
    then started directly, with the limits applied in each child."""
    if mode != "none":
        missing = [t for t in TOOLS if shutil.which(t) is None]
        try:
            if missing:
                raise OSError(f"{', '.join(missing)} not found on PATH (util-linux)")
            return Spawner(limits)
        except OSError as e:
            if mode == "pidns":
                raise
            warn(log, f"actions run without a PID namespace ({e}): one that clears its environment may outlive the worker")
    try:
        return Spawner(limits, namespace=False)
    except OSError as e:
        warn(log, f"actions are started directly, without a spawner ({e})")
        return None
