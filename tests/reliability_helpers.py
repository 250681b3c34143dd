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
