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
    for attempt in range(8):   # it needs the queued RESULTs read before our HELLO: 1 run in 3
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
        took = time.monotonic() - resumed
        assert proc.returncode == 0, err
        for name, data in expected.items():
            assert (work / name).read_bytes() == data
        assert took < 2.5, f"attempt {attempt}: {took:.1f}s from SIGCONT to the end\n{err.decode()}"
