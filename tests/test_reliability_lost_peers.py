"""Reliability with real processes: a worker, submitter or broker killed, frozen or restarted mid-run."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from tests.procs import free_port, processes_running, processes_with_env, wait_until
from tests.reliability_helpers import ledger_lines, rakefile, start_broker, start_cluster, start_submit


def one_running_action(procs, tmp_path):
    """Workers w1 and w2 and a submit of one 1.5 s action, once it runs: (workers, submit
    process, ledger the action writes its worker's name to, the worker running it)."""
    endpoint, _, workers = start_cluster(procs, tmp_path, ("w1", "w2"))
    ledger = tmp_path / "ledger"
    work = rakefile(tmp_path / "w", f"\tremote-echo $RAKE_WORKER >> {ledger}; sleep 1.5; echo done-$RAKE_WORKER\n")
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: ledger_lines(ledger), 15)
    return workers, sub, ledger, ledger_lines(ledger)[0]


@pytest.mark.timeout(60)
def test_worker_killed_mid_action_is_retried_elsewhere_and_leaves_no_process(procs, tmp_path):
    workers, sub, ledger, first = one_running_action(procs, tmp_path)
    assert processes_with_env(f"RAKE_WORKER={first}")
    workers[first].send_signal(signal.SIGKILL)
    assert wait_until(lambda: not processes_with_env(f"RAKE_WORKER={first}"), 5), "orphans survived"
    out, err = sub.communicate(timeout=30)
    other = "w2" if first == "w1" else "w1"
    assert sub.returncode == 0, err
    assert out == f"done-{other}\n".encode()
    assert b"retrying" in err and first.encode() in err


@pytest.mark.timeout(60)
def test_frozen_worker_is_replaced_and_its_late_result_is_dropped(procs, tmp_path):
    workers, sub, ledger, first = one_running_action(procs, tmp_path)
    workers[first].send_signal(signal.SIGSTOP)
    try:
        assert wait_until(lambda: len(ledger_lines(ledger)) == 2, 10), "not retried while frozen"
    finally:
        workers[first].send_signal(signal.SIGCONT)   # wakes and sends its now-late result
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    assert out.count(b"done-") == 1 and b"done-" + first.encode() not in out


@pytest.mark.timeout(90)
def test_broker_restart_mid_run_loses_nothing_and_runs_nothing_twice(procs, tmp_path):
    port = free_port()
    broker, log = start_broker(procs, tmp_path, port)
    endpoint = f"tcp://127.0.0.1:{port}"
    for n in ("w1", "w2"):
        procs.worker(endpoint, n, tmp_path / f"scratch-{n}", slots=2)
    assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
    ledger = tmp_path / "ledger"
    body = "".join(f"\tremote-sleep 0.{3 + i % 5}; echo {i} >> {ledger}; echo out-{i}\n" for i in range(12))
    work = rakefile(tmp_path / "w", body)
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: len(ledger_lines(ledger)) >= 2, 15)
    broker.send_signal(signal.SIGKILL)
    broker.wait()
    time.sleep(0.5)
    start_broker(procs, tmp_path, port, "broker2")
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    outs = Counter(out.decode().split())
    assert outs == Counter(f"out-{i}" for i in range(12)), out
    ran = Counter(ledger_lines(ledger))
    assert ran == Counter(str(i) for i in range(12)), f"ran twice or never: {ran}"


@pytest.mark.timeout(60)
def test_killed_submitter_has_its_remote_actions_cancelled(procs, tmp_path):
    endpoint, _, _ = start_cluster(procs, tmp_path, ("w1",), slots=2)
    token = f"41.{os.getpid()}"
    work = rakefile(tmp_path / "w", f"\tremote-exec sleep {token}\n\tremote-exec sleep {token}1\n")
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: len(processes_running(f"sleep {token}")) >= 2, 15)
    sub.send_signal(signal.SIGKILL)
    sub.wait()
    # Liveness is 3 heartbeats of 0.2 s: well within 5 s the broker cancels them.
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 5), "actions outlived their submitter"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker_restarts", [False, True], ids=["broker-stays", "broker-restarts"])
def test_a_job_queued_on_a_frozen_worker_runs_once_when_it_wakes(procs, tmp_path, broker_restarts):
    port = free_port()
    broker, log = start_broker(procs, tmp_path, port)
    endpoint = f"tcp://127.0.0.1:{port}"
    workers = {n: procs.worker(endpoint, n, tmp_path / f"scratch-{n}", slots=1) for n in ("w1", "w2")}
    assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
    ledger = tmp_path / "ledger"
    body = "".join(f"\tremote-echo a{i}-$RAKE_WORKER >> {ledger}; sleep 1; echo out-{i}\n" for i in range(6))
    sub = start_submit(procs, rakefile(tmp_path / "w", body), "--broker", endpoint)
    assert wait_until(lambda: len(ledger_lines(ledger)) >= 2, 15)   # one running on each, others queued
    running = {line.split("-")[0] for line in ledger_lines(ledger)}
    workers["w1"].send_signal(signal.SIGSTOP)
    try:
        if broker_restarts:
            broker.send_signal(signal.SIGKILL)
            broker.wait()
            start_broker(procs, tmp_path, port, "broker2")
        time.sleep(2.5)   # far past the liveness window: w1 is dropped, its jobs placed again
    finally:
        workers["w1"].send_signal(signal.SIGCONT)
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    assert Counter(out.decode().split()) == Counter(f"out-{i}" for i in range(6)), out
    starts = Counter(line.split("-")[0] for line in ledger_lines(ledger))
    # Only an action already running when its worker froze may run again (docs/reliability.md).
    assert {a for a, n in starts.items() if n > 1} <= running, ledger_lines(ledger)


@pytest.mark.timeout(60)
def test_a_broker_dying_after_a_failure_still_ends_the_run_after_broker_wait_letting_local_traps_run(procs, tmp_path):
    """The failure halted the actionset; the remote action still running was waited for
    with no broker to answer, for ever. And local actions get SIGTERM first, as on Ctrl-C."""
    endpoint, broker, _ = start_cluster(procs, tmp_path, ("w1",), slots=2)
    ledger = tmp_path / "ledger"
    # The failure waits for the other two to run: a job still queued on the worker when it
    # failed would be held back there, not run.
    fail = f"echo x >> {ledger}; while [ $(wc -l < {ledger}) -lt 3 ]; do sleep 0.05; done; false"
    work = rakefile(tmp_path / "w", f"\tremote-{fail}\n\tremote-echo x >> {ledger}; sleep 30\n"
                                    f"\ttrap 'echo cleaned > cleaned; exit 1' TERM; echo x >> {ledger}; sleep 30 & wait\n")
    sub = start_submit(procs, work, "--broker", endpoint, "--broker-wait", "2")
    assert wait_until(lambda: len(ledger_lines(ledger)) == 3, 15)
    time.sleep(0.5)   # the failure is in
    broker.send_signal(signal.SIGKILL)
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 69, err
    assert b"no word from the broker for 2s; giving up" in err
    assert (work / "cleaned").read_text() == "cleaned\n"
