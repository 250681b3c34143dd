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
import time
from pathlib import Path

from bench.common import interrupt_deferred, program_version

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


def missing() -> str | None:
    """Why Celery cannot run here, as one line saying how to get it; None when it can."""
    if app is None:
        return "Celery skipped: not installed (pip install '.[compare]')"
    if shutil.which("redis-server") is None:
        return "Celery skipped: redis-server not on PATH (e.g. Debian's redis-server package)"
    return None


def versions() -> dict:
    import celery
    import redis
    return {"celery": celery.__version__, "redis-py": redis.__version__,
            "redis-server": _redis_version(program_version(["redis-server", "--version"]))}


def _redis_version(line: str) -> str:
    """7.0.15 from `Redis server v=7.0.15 sha=... malloc=...`."""
    return next((w[2:] for w in line.split() if w.startswith("v=")), line)


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


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _wait(results, worker: subprocess.Popen, log: Path, timeout: float) -> list:
    """The results' values, polling the worker too: a worker that dies (at start-up, say)
    ends the wait at once with its last lines of stderr, not after `timeout`."""
    deadline = time.monotonic() + timeout
    while not results.ready():
        if worker.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with status {worker.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Celery: no results within {timeout:g} s; worker log:\n{_tail(log)}")
        time.sleep(0.05)
    return results.get(timeout=10)


def celery_time(actions: int, jobs: int, scratch: Path, timeout: float = 300) -> float:
    """Seconds from starting the Celery worker until all `actions` results are back, each of
    which must be 0. Redis and the worker run in `scratch` (the worker's stderr in worker.log),
    each in its own process group: a Ctrl-C passed to ours must not stop Redis before the
    results and the client let go of it, or they retry it for ~20 s. We stop both."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = worker = client = results = None
    log = scratch / "worker.log"
    try:
        with interrupt_deferred():   # not started unrecorded
            redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(scratch)], stdout=subprocess.DEVNULL,
                                     process_group=0)
        _wait_for_port(port, redis)
        client = Celery("rakebench-client", broker=url, backend=url)   # fresh: no pool of an old run
        env = dict(os.environ, RAKE_BENCH_REDIS=url)
        start = time.perf_counter()
        with log.open("wb") as err, interrupt_deferred():
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker", "--pool", "prefork",
                 "--concurrency", str(jobs), "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-l", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=err, process_group=0)
        results = group(client.signature("rakebench.run_true") for _ in range(actions)).apply_async()
        codes = _wait(results, worker, log, timeout)
        elapsed = time.perf_counter() - start
        if len(codes) != actions or any(codes):
            raise RuntimeError(f"Celery: {len(codes)} results, {sum(1 for c in codes if c)} not 0")
        return elapsed
    finally:
        with interrupt_deferred():
            try:
                if worker is not None:
                    _stop(worker)
                if results is not None:   # while Redis is up: a result freed later retries it for ~20 s
                    _release(results)
                if client is not None:   # likewise
                    client.close()
            finally:
                if redis is not None:
                    _stop(redis)


def _release(results) -> None:
    """Unsubscribe every result now, and leave its __del__ nothing to do."""
    for result in results.results:
        if result.backend is not None:
            result.backend.remove_pending_result(result)
            result.backend = None


def _wait_for_port(port: int, redis: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {redis.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start within 10 s")
