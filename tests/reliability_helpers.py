"""Starting real brokers, workers and submitters for the reliability tests, and reading their ledgers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.procs import command, free_port, wait_until


def start_broker(procs, tmp_path: Path, port: int, name: str = "broker"):
    log = tmp_path / f"{name}.log"
    proc = procs.start(command("rake-broker") + ["--bind", f"tcp://127.0.0.1:{port}"],
                       stdout=subprocess.PIPE, stderr=log.open("ab"))
    assert proc.stdout.readline().decode().strip() == f"tcp://127.0.0.1:{port}"
    return proc, log


def start_cluster(procs, tmp_path: Path, names, slots=1):
    port = free_port()
    broker, log = start_broker(procs, tmp_path, port)
    endpoint = f"tcp://127.0.0.1:{port}"
    workers = {n: procs.worker(endpoint, n, tmp_path / f"scratch-{n}", slots=slots) for n in names}
    assert wait_until(lambda: log.read_text().count(" joined") >= len(names), 15), log.read_text()
    return endpoint, broker, workers


def rakefile(work: Path, body: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "Rakefile").write_text("actionset1:\n" + body)
    return work


def start_submit(procs, work: Path, *args: str) -> subprocess.Popen:
    return procs.start(command("rake-submit") + list(args), cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ledger_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


class RestartableCluster:
    """A broker on a fixed loopback port that a test may kill and start again, and one
    worker `w1`, all at `heartbeat` (the tests' own is too short to tell a stall apart)."""

    def __init__(self, procs, tmp_path: Path, heartbeat: str):
        from tests.procs import rake_env
        self.procs, self.env = procs, rake_env(RAKE_HEARTBEAT=heartbeat)
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.log = tmp_path / "broker.log"
        self.broker = self.start_broker()
        (tmp_path / "w1").mkdir()
        procs.start(command("rake-worker") + ["--broker", self.endpoint, "--name", "w1", "--workdir",
                                              str(tmp_path / "w1")],
                    env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: self.log.read_text().count(" joined") >= 1, 15)

    def start_broker(self) -> subprocess.Popen:
        proc = self.procs.start(command("rake-broker") + ["--bind", self.endpoint], env=self.env,
                                stdout=subprocess.PIPE, stderr=self.log.open("ab"))
        assert proc.stdout.readline().decode().strip() == self.endpoint
        self.broker = proc
        return proc

    def restart_broker(self, down: float = 0.5, meanwhile=lambda: None) -> None:
        """Kill the broker (-9), call `meanwhile`, wait `down` seconds, start it again."""
        import signal
        import time
        self.broker.send_signal(signal.SIGKILL)
        self.broker.wait()
        meanwhile()
        time.sleep(down)
        self.start_broker()

    def submit(self, work: Path) -> subprocess.Popen:
        return self.procs.start(command("rake-submit") + ["--broker", self.endpoint], cwd=work, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
