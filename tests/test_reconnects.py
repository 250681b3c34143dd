"""A worker that reconnects on its own (it stopped hearing the broker) while the broker still
hears it: nothing sent to it may be lost for good."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import command, rake_env, wait_until


@pytest.mark.timeout(120)
def test_jobs_lost_when_a_worker_reconnects_before_the_broker_misses_it_are_sent_again(procs, tmp_path):
    """The link to a worker stalls one way: the worker stops hearing the broker and
    reconnects, while the broker still hears it. What the old connection held is lost;
    before, those actions were never answered and the run hung (1-second heartbeats: with
    the suite's faster ones the loss did not happen reliably)."""
    env = rake_env(RAKE_HEARTBEAT="1")
    log = tmp_path / "broker.log"
    broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], env=env,
                         stdout=subprocess.PIPE, stderr=log.open("wb"))
    endpoint = broker.stdout.readline().decode().strip()
    held = tmp_path / "held"
    proxy = procs.start([sys.executable, str(Path(__file__).parent / "stallproxy.py"), endpoint.rsplit(":", 1)[1],
                         str(held)], stdout=subprocess.PIPE)
    port = proxy.stdout.readline().decode().strip()
    for name, slots, via in (("a", 1, endpoint), ("d", 4, f"tcp://127.0.0.1:{port}")):
        procs.start(command("rake-worker") + ["--broker", via, "--name", name, "--slots", str(slots),
                                              "--workdir", str(tmp_path / name)], env=env, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: log.read_text().count(" joined") == 2, 15), log.read_text()
    work = tmp_path / "w"
    work.mkdir()
    # 100: enough left for both workers after the stall (the loss shows as a hang, as with 200)
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\tremote-sleep 0.2; echo {n} > o{n}\n"
                                                            for n in range(100)))
    sub = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work, env=env,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: len(list(work.glob("o*"))) >= 10, 20)
    held.touch()
    time.sleep(6.0)   # past the worker's liveness window: it reconnects
    held.unlink()
    out, err = sub.communicate(timeout=80)
    assert sub.returncode == 0, err[-800:]
    assert sorted(p.name for p in work.glob("o*")) == sorted(f"o{n}" for n in range(100))


@pytest.mark.timeout(60)
def test_a_long_broker_silence_is_said_once_not_every_liveness_window(procs, tmp_path):
    import signal
    broker, endpoint = procs.broker()
    procs.worker(endpoint, "w1", tmp_path / "w1")
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-sleep 1\nactionset2:\n\tremote-echo done\n")
    proc = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    broker.send_signal(signal.SIGSTOP)   # silent for about five liveness windows (0.6 s each)
    time.sleep(3.0)
    broker.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0 and out == b"done\n", err
    assert err.count(b"broker silent; saying hello again") == 1, err
