"""A submitter stopped (SIGSTOP, Ctrl-Z, a frozen machine) while its remote actions end with
outputs over 1 MiB: the broker drops it and cancels its run. On SIGCONT it reads the queued
RESULTs and asks for the outputs (WANT) before it says HELLO again; the broker forwarded
those WANTs but dropped every chunk answering them (their addressee was unknown), and the
submitter, once registered again, counted the downloads as merely waiting for the broker: it
asked again only after 3 liveness windows (9 s with the default 1 s heartbeat). The test beats at 0.5 s."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.procs import command, rake_env, wait_until
from tests.reliability_helpers import RestartableCluster


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.timeout(120)
def test_big_outputs_of_actions_ended_while_the_submitter_was_stopped_arrive_without_a_stall(procs, tmp_path):
    env = rake_env(RAKE_HEARTBEAT="0.5")   # window 1.5 s: the stall was 3 windows, 4.5 s
    log = tmp_path / "broker.log"
    broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], env=env,
                         stdout=subprocess.PIPE, stderr=log.open("wb"))
    endpoint = broker.stdout.readline().decode().strip()
    for name in ("w1", "w2"):
        (tmp_path / name).mkdir()
        procs.start(command("rake-worker") + ["--broker", endpoint, "--name", name, "--slots", "2",
                                              "--workdir", str(tmp_path / name)], env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: log.read_text().count(" joined") >= 2, 15)
    work = tmp_path / "work"
    work.mkdir()
    # Over 1 MiB each: fetched in chunks after the RESULT, not sent inline.
    (work / "Rakefile").write_text("actionset1:\n"
                                   "\tremote-sleep 0.4; seq 1 700000 > big2.txt\n"
                                   "\tremote-sleep 0.4; seq 5 900000 > big3.txt\n")
    expected = {"big2.txt": subprocess.run(["seq", "1", "700000"], capture_output=True).stdout,
                "big3.txt": subprocess.run(["seq", "5", "900000"], capture_output=True).stdout}
    for attempt in range(4):   # it needs the queued RESULTs read before our HELLO: most runs
        for name in expected:
            (work / name).unlink(missing_ok=True)
        proc = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)   # the JOBs are sent, and running
        proc.send_signal(signal.SIGSTOP)
        assert wait_until(lambda: state(proc.pid) == "T", 10)
        time.sleep(2.5)   # the actions end meanwhile; the broker drops us (window: 1.5 s)
        proc.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - resumed
        assert proc.returncode == 0, err
        for name, data in expected.items():
            assert (work / name).read_bytes() == data
        # Not after a stall of 3 liveness windows (4.5 s here), which rake-submit now tells;
        # the bound is a hang's, not a speed's: without a stall this takes some 50 ms.
        assert b"asked again from the start" not in err, f"attempt {attempt}:\n{err.decode()}"
        assert waited < 3.0, f"attempt {attempt}: {waited:.1f}s from SIGCONT to the end\n{err.decode()}"


@pytest.mark.timeout(120)
def test_a_big_output_being_fetched_when_the_broker_restarts_is_asked_again_at_once(procs, tmp_path):
    """The chunks in flight die with the broker: the download was asked again only after it
    stalled for 3 liveness windows (the holder refused a sooner restart of an open stream)."""
    cluster = RestartableCluster(procs, tmp_path, "0.5")   # window 1.5 s: a stall was 4.5 s
    work = tmp_path / "work"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-yes abcdefg | head -c 300M > huge.bin\n")
    sub = cluster.submit(work)
    under_way = lambda: sum(p.stat().st_size for p in work.glob(".rake-incoming-*/*")) > 8 << 20  # noqa: E731
    assert wait_until(under_way, 60, step=0.005), "the download was not seen under way"
    cluster.restart_broker()
    back = time.monotonic()
    _, err = sub.communicate(timeout=90)
    waited = time.monotonic() - back
    assert sub.returncode == 0, err
    assert (work / "huge.bin").stat().st_size == 300 << 20
    with open(work / "huge.bin", "rb") as fh:
        assert fh.read(16) == b"abcdefg\nabcdefg\n"
    assert b"asked again from the start" not in err, err.decode()
    assert waited < 4.5, f"{waited:.1f}s after the broker came back\n{err.decode()}"   # a stall: 4.5 s and more


@pytest.mark.timeout(120)
def test_a_big_input_being_fetched_by_a_worker_when_the_broker_restarts_is_asked_again_at_once(procs, tmp_path):
    """The worker's side of the same: it asked again only once the download had stalled for
    3 liveness windows (9 s at the default heartbeat, used here)."""
    cluster = RestartableCluster(procs, tmp_path, "1")
    work = tmp_path / "work"
    work.mkdir()
    with open(work / "big.bin", "wb") as fh:
        for i in range(300):
            fh.write(bytes([i % 251 + 1]) * (1 << 20))
    (work / "Rakefile").write_text("actionset1:\n\tremote-wc -c < big.bin\n\t\trequires big.bin\n")
    sub = cluster.submit(work)
    cache = tmp_path / "w1" / "cache"
    under_way = lambda: sum(p.stat().st_size for p in cache.glob("tmp-*") if p.is_file()) > 8 << 20  # noqa: E731
    assert wait_until(under_way, 60, step=0.005), "the fetch was not seen under way"
    cluster.restart_broker()
    back = time.monotonic()
    out, err = sub.communicate(timeout=90)
    waited = time.monotonic() - back
    assert sub.returncode == 0, err
    assert out == b"314572800\n", out
    assert waited < 7.0, f"{waited:.1f}s after the broker came back\n{err.decode()}"   # a stall: 9 s and more
