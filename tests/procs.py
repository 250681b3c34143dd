"""Start and stop the real rake programs for integration tests; every process is stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

BIN = Path(sys.executable).parent
FAST_HEARTBEAT = "0.2"


def command(name: str) -> list[str]:
    """The installed console script, or the module run by this Python as a fallback."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    module = {"rake-broker": "broker.main", "rake-worker": "worker.main", "rake-submit": "submitter.main",
              "rake-keygen": "rakeauth.keygen", "rake-status": "submitter.status"}[name]
    return [sys.executable, "-m", module]


NO_CONFIG = "/nonexistent/rake-test-config"


def rake_env(**extra: str) -> dict[str, str]:
    """The test's environment, minus anything of the user's that would steer rake."""
    env = dict(os.environ)
    for name in ("RAKE_BROKER", "NO_COLOR", "FORCE_COLOR"):
        env.pop(name, None)
    # The machine's and the user's config files must not steer the programs under test.
    env["RAKE_SYSTEM_CONFIG"] = NO_CONFIG + "/etc.toml"
    env["XDG_CONFIG_HOME"] = NO_CONFIG
    env.setdefault("RAKE_HEARTBEAT", FAST_HEARTBEAT)
    env.update(extra)
    return env


class Processes:
    """Everything a test started; stop() kills by pid and waits, whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("env", rake_env())
        proc = subprocess.Popen(args, **kw)
        self.procs.append(proc)
        return proc

    def broker(self, bind: str = "tcp://127.0.0.1:*", *extra: str) -> tuple[subprocess.Popen, str]:
        """A broker, and the endpoint it printed on its first line."""
        proc = self.start(command("rake-broker") + ["--bind", bind, *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("tcp://"):
            raise RuntimeError(f"broker printed {line!r} instead of its endpoint")
        return proc, line

    def worker(self, broker: str, name: str, workdir: Path, slots: int = 2, *extra: str) -> subprocess.Popen:
        workdir.mkdir(parents=True, exist_ok=True)
        return self.start(command("rake-worker") + ["--broker", broker, "--name", name,
                                                     "--slots", str(slots), "--workdir", str(workdir), *extra],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cluster(self, tmp_path: Path, names=("w1", "w2"), slots: int = 2,
                *extra: str, broker_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
        """A broker plus workers (`extra`: more worker flags): (broker process, endpoint), once
        every worker has joined."""
        log = tmp_path / "broker.log"
        proc = self.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*", *broker_args],
                          stdout=subprocess.PIPE, stderr=log.open("wb"))
        endpoint = proc.stdout.readline().decode().strip()
        for name in names:
            self.worker(endpoint, name, tmp_path / f"scratch-{name}", slots, *extra)
        joined = lambda: log.read_text().count(" joined") >= len(names)  # noqa: E731
        if not wait_until(joined, 15):
            raise RuntimeError(f"workers did not join: {log.read_text()}")
        return proc, endpoint

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
        self.procs.clear()


def submit(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """Run rake-submit to completion; raw bytes out; a hang fails the test via TimeoutExpired."""
    return subprocess.run(command("rake-submit") + args, cwd=cwd, env=rake_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _live(read: str):
    """(pid, contents of /proc/pid/<read>) for every live, non-zombie process but this one."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/{read}", "rb") as fh:
                data = fh.read()
            with open(f"/proc/{name}/stat") as fh:
                if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        yield int(name), data


def processes_running(needle: str) -> list[int]:
    """Host pids of live processes whose command line contains `needle`."""
    return [pid for pid, cmd in _live("cmdline")
            if needle in cmd.replace(b"\0", b" ").decode(errors="replace")]


def processes_with_env(entry: str) -> list[int]:
    """Host pids of live processes whose environment holds `entry` (e.g. RAKE_WORKER=w1)."""
    needle = entry.encode() + b"\0"
    return [pid for pid, env in _live("environ") if needle in env + b"\0"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_nobody(step):
    """What `step()` returns (anything JSON can carry), called in a forked child that
    dropped root for uid 65534; None if it raised."""
    import json
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child: never return into pytest
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, json.dumps(step()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        answer = fh.read()
    os.waitpid(pid, 0)
    return json.loads(answer) if answer else None


NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]


def unprivileged_python() -> tuple[list[str], dict] | None:
    """A Python uid 65534 can run, and its environment, with rake importable: this one, or
    else (this one under /root, say) the system's of the same version, given our paths."""
    # The worker starts its spawner with sys.executable: that user must be able to run it too.
    check = ("import subprocess, sys; assert sys.version_info[:2] == %r; "
             "subprocess.run([sys.executable, '-c', 'import zmq, msgpack'], check=True)" % (sys.version_info[:2],))
    paths = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                            sysconfig.get_paths()["purelib"]])}
    for python, env in ((sys.executable, {}), ("/usr/bin/python3", paths)):
        if os.path.exists(python) and subprocess.run(NOBODY + [python, "-c", check], capture_output=True,
                                                     env={**os.environ, **env}).returncode == 0:
            return [python], env
    return None
