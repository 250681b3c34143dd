"""rake-status against a real broker with real workers on loopback (issue 7: the cluster at a glance)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from pathlib import Path

import pytest

from tests.procs import command, free_port, rake_env, wait_until


def status(*args: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("rake-status") + list(args), env=rake_env(**env), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def status_json(endpoint: str) -> dict:
    out = status("--broker", endpoint, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def start_sleeping_action(procs, tmp_path: Path, endpoint: str, token: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Rakefile").write_text(f"actionset1:\n\tremote-sleep 20 && echo {token}\n")
    procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.timeout(60)
def test_status_lists_every_connected_worker_with_its_slots_and_state(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"), slots=3)
    out = status("--broker", endpoint)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"broker {endpoint} ") and "2 workers, 6 slots" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("WORKER"))
    rows = [line.split() for line in lines[header + 1: header + 3]]
    assert [r[0] for r in rows] == ["w1", "w2"]
    assert all(r[2] == "ok" and r[3] == "3" for r in rows), lines
    assert "no action in flight" in lines


@pytest.mark.timeout(60)
def test_status_json_counts_the_workers_and_has_the_documented_shape(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"))
    shape = status_json(endpoint)
    assert shape["workers_total"] == 2 and len(shape["workers"]) == 2
    assert {w["name"] for w in shape["workers"]} == {"w1", "w2"}
    assert set(shape["workers"][0]) >= {"id", "name", "host", "slots", "queue", "running", "state",
                                        "heard", "version"}
    assert shape["flight"] == [] and shape["submitters_total"] == 0
    # Every documented counter is there from the start, as /metrics shows it: 0, not absent.
    assert {k: shape["counters"][k] for k in ("results_dropped", "rate_limited", "bugs", "forbidden")} == \
        dict.fromkeys(("results_dropped", "rate_limited", "bugs", "forbidden"), 0)


@pytest.mark.timeout(60)
def test_a_running_action_shows_in_flight_with_its_worker_and_command(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"))
    start_sleeping_action(procs, tmp_path, endpoint, "status-token-1")
    assert wait_until(lambda: status_json(endpoint)["flight"], 20, step=0.3)
    assert wait_until(lambda: status_json(endpoint)["flight"][0]["state"] == "running", 10, step=0.3)
    (action,) = status_json(endpoint)["flight"]
    assert action["command"] == "sleep 20 && echo status-token-1"
    assert action["worker_name"] in ("w1", "w2") and action["submitter"]
    text = status("--broker", endpoint).stdout
    assert "1 action in flight" in text
    row = next(line for line in text.splitlines() if "status-token-1" in line).split()
    assert row[:3] == ["1", "running", action["worker_name"]]


@pytest.mark.timeout(60)
def test_watch_redraws_until_its_count_is_reached(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    out = status("--broker", endpoint, "--watch", "0.1", "--count", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(f"broker {endpoint} ") == 3
    assert "\x1b" not in out.stdout   # not a terminal: no screen clearing
    lines = status("--broker", endpoint, "--json", "--watch", "0.1", "--count", "2").stdout.splitlines()
    assert [json.loads(line)["workers_total"] for line in lines] == [1, 1]


@pytest.mark.timeout(60)
def test_watch_on_a_terminal_redraws_in_place(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    master, slave = pty.openpty()
    try:
        proc = procs.start(command("rake-status") + ["--broker", endpoint, "--watch", "0.1", "--count", "2"],
                           stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        assert proc.wait(timeout=20) == 0
        screen = read_all(master)
    finally:
        os.close(master)
    assert screen.count(b"\x1b[H\x1b[2J") == 2 and screen.count(b"w1") == 2


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:   # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(60)
def test_an_interrupted_watch_exits_0(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    proc = procs.start(command("rake-status") + ["--broker", endpoint, "--watch", "0.2"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(f"broker {endpoint} ".encode())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


@pytest.mark.timeout(60)
def test_a_watch_whose_reader_is_done_ends_quietly_with_0(procs, tmp_path):
    """`rake-status --watch | head`: the reader leaving is how such a watch ends."""
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    proc = procs.start(command("rake-status") + ["--broker", endpoint, "--watch", "0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(f"broker {endpoint} ".encode())
    proc.stdout.close()
    assert proc.wait(timeout=10) == 0
    assert proc.stderr.read() == b""


@pytest.mark.timeout(30)
def test_no_broker_answering_gives_69_and_one_line(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = status("--timeout", "0.5", RAKE_BROKER=endpoint)
    assert out.returncode == 69
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"rake-status: no status from a broker at {endpoint} (from RAKE_BROKER): "), line
    assert line.endswith(("(connection refused, or no such host)", "no answer within 0.5 s")), line


def test_version_and_usage_errors():
    out = status("--version")
    assert out.returncode == 0 and out.stdout.startswith("rake-status ")
    bad = status("--watch", "-1")
    assert bad.returncode == 2 and "--watch" in bad.stderr
    alone = status("--count", "2")
    assert alone.returncode == 2 and "--count needs --watch" in alone.stderr


@pytest.mark.timeout(60)
def test_with_curve_a_submitter_key_may_ask_and_a_worker_key_may_not(procs, tmp_path):
    from tests.test_auth import Keys, start_broker
    keys = Keys(tmp_path / "keys")
    _, endpoint = start_broker(procs, keys, tmp_path / "broker.log")
    allowed = status("--broker", endpoint, "--json", *keys.flags("alice"))
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["workers_total"] == 0
    refused = status("--broker", endpoint, "--timeout", "1", *keys.flags("w1"))
    assert refused.returncode == 69 and "a worker key may not send STATUS" in refused.stderr


@pytest.mark.timeout(60)
def test_every_result_is_acknowledged_so_no_worker_sends_it_twice(procs, tmp_path):
    """Seen through the broker's counters: the submitter once flushed its ACKs only after a
    batch of 256 messages, so workers resent every result each liveness window."""
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"))
    work = tmp_path / "acks"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\tremote-echo {n}\n" for n in range(4)))
    run = subprocess.run(command("rake-submit") + ["--broker", endpoint], cwd=work, env=rake_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert run.returncode == 0, run.stderr
    assert wait_until(lambda: status_json(endpoint)["counters"].get("in.ACK", 0) >= 1, 10, step=0.2)
    window = 3 * float(rake_env()["RAKE_HEARTBEAT"])
    wait_until(lambda: False, 3 * window)   # a kept result would be resent within one window
    counters = status_json(endpoint)["counters"]
    assert counters["in.RESULT"] == 4, counters


@pytest.mark.timeout(60)
def test_acks_ride_on_the_next_jobs_so_a_busy_run_sends_few_ack_messages(procs, tmp_path):
    """A steady stream of jobs to one worker carries the acknowledgements of the results
    before them; only those of the last results need an ACK of their own."""
    _, endpoint = procs.cluster(tmp_path, names=("w1",), slots=1)
    work = tmp_path / "acks"
    work.mkdir()
    # Results 50 ms apart each arrive alone, and each frees room for the next job.
    (work / "Rakefile").write_text("actionset1:\n" + "\tremote-sleep 0.05\n" * 20)
    run = subprocess.run(command("rake-submit") + ["--broker", endpoint], cwd=work, env=rake_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert run.returncode == 0, run.stderr
    window = 3 * float(rake_env()["RAKE_HEARTBEAT"])
    wait_until(lambda: False, 1.5 * window)   # a result not acknowledged would be resent by now
    counters = status_json(endpoint)["counters"]
    assert counters["in.JOB"] == 20 and counters["in.RESULT"] == 20, counters
    assert 1 <= counters.get("in.ACK", 0) <= 3, counters   # 10 when each went alone


def test_totals_say_they_are_of_the_listed_workers_when_not_all_are_listed():
    from protocol.messages import StatusReply
    from protocol.status import WorkerState
    from submitter.status_text import render
    rows = tuple(WorkerState(id=f"57{i:02d}", name=f"w{i}", host="h", state="ok", slots=2, running=3, queue=1,
                             heard=0.1, version="0.1.0") for i in range(3))
    reply = StatusReply(version="0.1.0", uptime=5.0, heartbeat=1.0, workers=rows, workers_total=7)
    first = render(reply, "tcp://127.0.0.1:1").splitlines()[0]
    assert "7 workers, (the 3 listed: 6 slots, 9 running, 0 queued)" in first   # running > queue: not negative


@pytest.mark.timeout(60)
def test_watch_with_a_count_ends_when_the_broker_goes_silent_after_answering(procs):
    broker, endpoint = procs.broker()
    proc = procs.start(command("rake-status") + ["--broker", endpoint, "--json", "--watch", "0.2", "--count", "4",
                                                 "--timeout", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"{")   # it answered once
    broker.send_signal(signal.SIGSTOP)
    try:
        assert proc.wait(timeout=20) == 69
    finally:
        broker.send_signal(signal.SIGCONT)
    assert b"no answer from" in proc.stderr.read()
