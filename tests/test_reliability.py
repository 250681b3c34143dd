"""SPEC section 6, by breaking real processes: kill -9, SIGSTOP, broker restarts, timeouts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.procs import (
    command, free_port, processes_running, processes_with_env, rake_env, submit, wait_until,
)


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


@pytest.mark.timeout(60)
def test_timeout_kills_the_whole_tree_and_is_reported_as_a_timeout(procs, tmp_path):
    endpoint, _, _ = start_cluster(procs, tmp_path, ("w1",))
    token = f"42.{os.getpid()}"
    work = rakefile(tmp_path / "w", f"\tremote-(setsid sleep {token} &); sleep {token}\n")
    start = time.monotonic()
    res = submit(["--broker", endpoint, "--timeout", "1"], cwd=work)
    assert res.returncode == 1
    assert b"FAILED: [timeout after 1s]" in res.stderr
    assert time.monotonic() - start < 20
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 5), "a timed-out process survived"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_drains_a_worker_which_finishes_its_action_and_exits_0(procs, tmp_path, sig):
    endpoint, _, workers = start_cluster(procs, tmp_path, ("w1", "w2"))
    ledger = tmp_path / "ledger"
    body = f"\tremote-echo $RAKE_WORKER >> {ledger}; sleep 1; echo done-$RAKE_WORKER\n" * 2
    work = rakefile(tmp_path / "w", body)
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: len(ledger_lines(ledger)) == 2, 15)
    workers["w1"].send_signal(sig)
    assert workers["w1"].wait(timeout=15) == 0
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    assert sorted(out.split()) == [b"done-w1", b"done-w2"]
    assert sorted(ledger_lines(ledger)) == ["w1", "w2"], "an action ran twice"


@pytest.mark.timeout(60)
def test_a_draining_worker_stays_until_the_big_outputs_of_its_last_action_are_fetched(procs, tmp_path):
    # Outputs over 1 MiB are fetched after the RESULT; a worker that left at once lost them,
    # and with no other worker the run failed (69).
    endpoint, _, workers = start_cluster(procs, tmp_path, ("w1",))
    ledger = tmp_path / "ledger"
    work = rakefile(tmp_path / "w", f"\tremote-echo ran >> {ledger}; sleep 1; head -c 20000000 /dev/zero > out.bin\n")
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: len(ledger_lines(ledger)) == 1, 15)
    workers["w1"].send_signal(signal.SIGTERM)
    assert workers["w1"].wait(timeout=30) == 0
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    assert (work / "out.bin").stat().st_size == 20_000_000 and ledger_lines(ledger) == ["ran"]


@pytest.mark.timeout(60)
def test_a_reader_that_does_not_keep_up_stops_no_heartbeat_and_no_remote_action(procs, tmp_path):
    # rake-submit | less, left waiting: its writes block. Done on the loop, they stopped the
    # heartbeats; the broker dropped the submitter and its running action was killed and
    # run again (after a minute, exit 69). Output now waits on a thread of its own.
    endpoint, _, _ = start_cluster(procs, tmp_path, ("w1",))
    ledger = tmp_path / "ledger"
    work = rakefile(tmp_path / "w", "\thead -c 3000000 /dev/zero\n"
                                    f"\tremote-echo ran >> {ledger}; sleep 3; echo remote-ok\n")
    sub = start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: len(ledger_lines(ledger)) == 1, 15)
    time.sleep(5)   # nobody reads: the 3 MB block waits, for many liveness windows
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    assert out.count(b"\0") == 3_000_000 and out.endswith(b"remote-ok\n")
    assert ledger_lines(ledger) == ["ran"], err   # it ran once


@contextlib.contextmanager
def full_disk_cluster(procs, tmp_path):
    """A broker and a 1 MiB tmpfs for a worker's directory: (endpoint, broker log, the tmpfs)."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        port = free_port()
        _, log = start_broker(procs, tmp_path, port)
        yield f"tcp://127.0.0.1:{port}", log, small
    finally:
        procs.stop()
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


@pytest.mark.timeout(90)
def test_a_worker_failing_every_job_at_once_cannot_use_up_the_attempts_of_a_busy_run(procs, tmp_path):
    # Idle because it fails everything in an instant, the full worker always looks cheapest;
    # retries must wait for the busy healthy one instead of going back to it.
    with full_disk_cluster(procs, tmp_path) as (endpoint, log, small):
        procs.worker(endpoint, "full", small, slots=2)
        procs.worker(endpoint, "healthy", tmp_path / "big", slots=2)
        assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
        body = "".join(f"\tremote-sleep 0.3; sha256sum in_{i} > out_{i}\n\t\trequires in_{i}\n" for i in range(12))
        work = rakefile(tmp_path / "w", body)
        for i in range(12):
            (work / f"in_{i}").write_bytes(os.urandom(1500_000))
        res = submit(["--broker", endpoint], cwd=work, timeout=80)
        assert res.returncode == 0, res.stderr.decode()[-1500:]
        assert all((work / f"out_{i}").read_text().startswith(
            hashlib.sha256((work / f"in_{i}").read_bytes()).hexdigest()) for i in range(12))


@pytest.mark.timeout(60)
def test_worker_with_a_full_disk_hands_the_action_to_another_and_stays_up(procs, tmp_path):
    with full_disk_cluster(procs, tmp_path) as (endpoint, log, small):
        w1 = procs.worker(endpoint, "w1", small, slots=1)
        procs.worker(endpoint, "w2", tmp_path / "big", slots=1)
        assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
        # Two actions: at the start each worker gets one (one slot each), so w1 gets one.
        action = "\tremote-wc -c < big.bin; echo on-$RAKE_WORKER\n\t\trequires big.bin\n"
        work = rakefile(tmp_path / "w", action * 2)
        (work / "big.bin").write_bytes(os.urandom(3 << 20))
        res = submit(["--broker", endpoint, "-v"], cwd=work)
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"{3 << 20}\non-w2\n".encode() * 2
        assert b"sent to w1" in res.stderr       # one was tried there first
        assert w1.poll() is None, "the worker with the full disk died"


@pytest.mark.timeout(60)
def test_worker_started_before_its_broker_joins_when_the_broker_appears(procs, tmp_path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    procs.worker(endpoint, "early", tmp_path / "scratch", slots=1)
    time.sleep(1.0)
    start_broker(procs, tmp_path, port)
    work = rakefile(tmp_path / "w", "\tremote-echo on-$RAKE_WORKER\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"on-early\n"


@pytest.mark.timeout(60)
def test_a_restarted_worker_clears_sandboxes_left_by_its_killed_predecessor(procs, tmp_path):
    endpoint, _, workers = start_cluster(procs, tmp_path, ("w1",))
    scratch = tmp_path / "scratch-w1"
    work = rakefile(tmp_path / "w", "\tremote-sleep 30\n")
    start_submit(procs, work, "--broker", endpoint)
    assert wait_until(lambda: list(scratch.glob("job-*")), 15)
    workers["w1"].send_signal(signal.SIGKILL)
    workers["w1"].wait()
    left = {p.name for p in scratch.glob("job-*")}
    assert left, "the killed worker left nothing to clear"
    procs.worker(endpoint, "w1", scratch, slots=1)
    # Its own (the action, sent again, may run on it): only the predecessor's must go.
    assert wait_until(lambda: not left & {p.name for p in scratch.glob("job-*")}, 10)


@pytest.mark.timeout(30)
def test_a_second_worker_on_the_same_workdir_is_refused(procs, tmp_path):
    _, endpoint = procs.broker()
    procs.worker(endpoint, "w1", tmp_path / "shared", slots=1)
    assert wait_until(lambda: (tmp_path / "shared" / ".rake-worker.lock").exists(), 10)
    time.sleep(0.3)
    second = subprocess.run(command("rake-worker") + ["--broker", endpoint, "--workdir", str(tmp_path / "shared")],
                            capture_output=True, timeout=20, env=rake_env())
    assert second.returncode == 1
    assert b"in use by another rake-worker" in second.stderr


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
def test_a_worker_or_submitter_at_another_heartbeat_is_refused_in_one_line_not_left_hanging(procs, tmp_path):
    port = free_port()
    start_broker(procs, tmp_path, port)
    endpoint = f"tcp://127.0.0.1:{port}"
    other = str(float(rake_env()["RAKE_HEARTBEAT"]) * 5)
    worker = procs.start(command("rake-worker") + ["--broker", endpoint, "--heartbeat", other,
                                                   "--workdir", str(tmp_path / "scratch")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert worker.wait(timeout=30) == 1
    assert b"the broker refused us: the broker's heartbeat is" in worker.stderr.read()
    work = rakefile(tmp_path / "w", "\tremote-true\n")
    res = submit(["--broker", endpoint, "--heartbeat", other], cwd=work, timeout=30)
    assert res.returncode == 69, res.stderr
    err = res.stderr.decode()
    assert "answered bad-timing: the broker's heartbeat is" in err and "every broker refused" in err



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
