"""Celery with Redis as a peer for the dispatch benchmark: the same no-op commands as
Celery tasks, with a Redis server and a Celery worker of P processes started for the run
(both stopped after it). Optional context: used only when `celery[redis]` is installed and
`redis-server` is on PATH.

The Celery worker imports this module by name (`-A bench.celery_peer`), so the app and the
task live here; RAKE_BENCH_REDIS tells it where Redis listens.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

try:
    from celery import Celery, group
except ImportError:   # the optional extra is not installed: the benchmark skips Celery
    Celery = None

_URL = os.environ.get("RAKE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("rakebench", broker=_URL, backend=_URL) if Celery else None

if app is not None:
    app.conf.update(worker_prefetch_multiplier=4, task_acks_late=False, broker_connection_retry_on_startup=True)

    @app.task(name="rakebench.run_true")
    def run_true() -> int:
        return subprocess.run(["true"]).returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def celery_time(actions: int, jobs: int) -> float | None:
    """Seconds from starting the Celery worker until all `actions` results are back; None
    when Celery or redis-server is missing."""
    if app is None or shutil.which("redis-server") is None:
        return None
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory(prefix="rake-bench-redis-") as tmp:
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        worker = None
        try:
            _wait_for_port(port)
            client = Celery("rakebench-client", broker=url, backend=url)   # fresh: no pool of an old run
            env = dict(os.environ, RAKE_BENCH_REDIS=url)
            start = time.perf_counter()
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker", "--pool", "prefork",
                 "--concurrency", str(jobs), "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-l", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results = group(client.signature("rakebench.run_true") for _ in range(actions)).apply_async()
            results.get(timeout=600)
            elapsed = time.perf_counter() - start
            client.close()
            return elapsed
        finally:
            if worker is not None:
                _stop(worker)
            _stop(redis)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")
