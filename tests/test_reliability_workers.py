"""Reliability with real processes: workers timing out, draining, out of disk, restarted or refused."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time

import pytest

from tests.procs import command, free_port, processes_running, rake_env, submit, wait_until
from tests.reliability_helpers import ledger_lines, rakefile, start_broker, start_cluster, start_submit


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
    time.sleep(2)   # nobody reads: the 3 MB block waits, for three liveness windows and more
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
def test_a_worker_whose_disk_is_full_shows_as_full_in_rake_status_and_says_so(procs, tmp_path):
    from tests.test_status import status_json
    with full_disk_cluster(procs, tmp_path) as (endpoint, log, small):
        (small / "filler").write_bytes(b"x" * (256 << 10))   # 768 KiB left of 1 MiB: full
        err = tmp_path / "full.err"
        procs.start(command("rake-worker") + ["--broker", endpoint, "--name", "full", "--workdir", str(small)],
                    stdout=subprocess.DEVNULL, stderr=err.open("wb"))
        procs.worker(endpoint, "healthy", tmp_path / "big", slots=2)
        assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
        states = lambda: {w["name"]: w["state"] for w in status_json(endpoint)["workers"]}  # noqa: E731
        assert wait_until(lambda: states() == {"full": "full", "healthy": "ok"}, 15, step=0.3), states()
        assert "the worker's disk is full" in err.read_text()


@pytest.mark.timeout(90)
def test_a_worker_whose_disk_is_full_does_not_run_an_action_it_would_fail_after_its_end(procs, tmp_path):
    with full_disk_cluster(procs, tmp_path) as (endpoint, log, small):
        (small / "filler").write_bytes(b"x" * (256 << 10))   # 768 KiB left of 1 MiB: full
        procs.worker(endpoint, "full", small, slots=2)
        assert wait_until(lambda: log.read_text().count(" joined") >= 1, 15)
        ledger = tmp_path / "ledger"
        time.sleep(1.5)   # its once-a-second look at the disk
        res = submit(["--broker", endpoint], cwd=rakefile(tmp_path / "w", f"\tremote-echo ran >> {ledger}\n"), timeout=80)
        assert res.returncode == 1, res.stderr
        assert b"the worker's disk is full" in res.stderr, res.stderr
        assert not ledger.exists(), "the action ran on a worker whose disk was full"
