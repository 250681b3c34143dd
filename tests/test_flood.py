"""One hostile peer floods a real broker while a legitimate run goes on: the run finishes, the
broker's memory stays bounded, and the figures are printed (SPEC section 7, issue 6)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import zmq

from protocol import Heartbeat, Load, encode
from tests.procs import submit, wait_until

FLOOD_MESSAGES = 2_000_000   # a bound; the flood stops when the run ends
FLOOD_SECONDS = 20.0
ACTIONS = 20
RSS_LIMIT_MIB = 200


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+) kB", fh.read()).group(1)) / 1024


def rakefile(work: Path) -> Path:
    work.mkdir(exist_ok=True)
    lines = "".join(f"\tremote-echo action {i}\n" for i in range(ACTIONS))
    (work / "Rakefile").write_text("actionset1:\n" + lines)
    return work


class Flooder:
    """A raw DEALER sending heartbeats with a load, garbage and bad signatures, as fast as the
    broker takes them, until stopped, FLOOD_MESSAGES are sent or FLOOD_SECONDS pass."""

    def __init__(self, endpoint: str):
        self.endpoint, self.sent, self.done = endpoint, 0, threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        kinds = [encode(Heartbeat(load=Load(queue=0, running=0, slots=1, seq=1))),
                 [b"RAKE/1", b"\xc1garbage"], [b"GET / HTTP/1.1\r\n\r\n"]]
        with zmq.Context() as ctx:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, 1000)
            sock.setsockopt(zmq.RCVHWM, 10)   # it never reads its answers
            sock.connect(self.endpoint)
            deadline = time.monotonic() + FLOOD_SECONDS
            try:
                while not self.stopping and self.sent < FLOOD_MESSAGES and time.monotonic() < deadline:
                    sock.send_multipart(kinds[self.sent % 3])
                    self.sent += 1
            except zmq.Again:
                pass
            finally:
                sock.close()
                self.done.set()


def peak_rss_while(pid: int, running: threading.Event) -> list[float]:
    """Samples VmRSS of `pid` every 50 ms until `running` is cleared; the list fills as it goes."""
    samples = [rss_mib(pid)]

    def sample() -> None:
        while running.is_set():
            samples.append(rss_mib(pid))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    return samples


@pytest.mark.timeout(90)
def test_a_flooding_peer_does_not_stop_a_legitimate_run(procs, tmp_path):
    # A low limit, so the flood certainly meets it; the run's own few messages a second do not.
    broker, endpoint = procs.cluster(tmp_path, names=("w1",), slots=2,
                                     broker_args=("--rate", "1000", "--burst", "1000"))
    work = rakefile(tmp_path / "work")
    t0 = time.monotonic()
    quiet = submit(["--broker", endpoint], work)
    quiet_s = time.monotonic() - t0
    assert quiet.returncode == 0, quiet.stderr

    running = threading.Event()
    running.set()
    rss = peak_rss_while(broker.pid, running)
    flood = Flooder(endpoint)
    assert wait_until(lambda: flood.sent > 20_000, 10)     # the flood is under way
    t0 = time.monotonic()
    flooded = submit(["--broker", endpoint], work)
    flooded_s = time.monotonic() - t0
    sent_during, still_flooding = flood.sent, not flood.done.is_set()
    time.sleep(max(0.0, 2.0 - flooded_s))     # long enough for the limit to be met, whatever the run took
    flood.stopping = True
    assert flood.done.wait(10)
    running.clear()
    log = (tmp_path / "broker.log").read_text()
    limited = max((int(n) for n in re.findall(r"rate_limited: (\d+)", log)), default=0)
    rejected = max((int(n) for n in re.findall(r"rejected: (\d+)", log)), default=0)
    print(f"\nflood: {flood.sent} messages ({sent_during} before the run ended); {ACTIONS} actions took "
          f"{quiet_s:.2f} s quiet, {flooded_s:.2f} s under flood (x{flooded_s / quiet_s:.1f}); "
          f"broker peak RSS {max(rss):.1f} MiB; at least {limited} dropped by the rate limit, "
          f"{rejected} rejected as malformed")
    assert flooded.returncode == 0, flooded.stderr
    assert flooded.stdout.count(b"action ") == ACTIONS
    assert still_flooding          # the flood lasted the whole run
    assert limited > 0             # and met the rate limit
    assert max(rss) < RSS_LIMIT_MIB
    assert broker.poll() is None


@pytest.mark.timeout(60)
def test_a_frame_over_the_limit_is_cut_off_and_the_broker_serves_on(procs, tmp_path):
    broker, endpoint = procs.cluster(tmp_path, names=("w1",), slots=1)
    with zmq.Context() as ctx:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        for _ in range(3):
            sock.send_multipart([b"RAKE/1", b"\x80", bytes(65 << 20)])
        time.sleep(0.5)
        sock.close()
    peak = rss_mib(broker.pid)
    res = submit(["--broker", endpoint], rakefile(tmp_path / "work"))
    assert res.returncode == 0, res.stderr
    print(f"\nbroker RSS after three 65 MiB frames: {peak:.1f} MiB")
    assert peak < 64


@pytest.mark.timeout(60)
def test_a_broker_out_of_descriptors_says_so_and_serves_again_once_they_are_back(tmp_path):
    """libzmq cannot accept a connection then, and says so nowhere an operator would see: the
    peer's connect just hangs."""
    import resource
    import socket
    import subprocess
    from tests.procs import command, rake_env
    log = tmp_path / "broker.log"
    few = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))  # noqa: E731 (its hard limit: no raising it)
    broker = subprocess.Popen(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], env=rake_env(),
                              stdout=subprocess.PIPE, stderr=log.open("wb"), preexec_fn=few)
    conns = []
    try:
        endpoint = broker.stdout.readline().decode().strip()
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        for _ in range(80):   # more than its descriptors: the kernel queues them, libzmq fails to take them
            conns.append(socket.create_connection((host, int(port)), timeout=5))
        assert wait_until(lambda: "open files left: new connections hang, unaccepted (raise the open-files limit"
                          in log.read_text(), 15), log.read_text()
        for c in conns:
            c.close()
        conns.clear()
        status = subprocess.run(command("rake-status") + ["--broker", endpoint, "--json"], env=rake_env(),
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        assert broker.poll() is None
    finally:
        for c in conns:
            c.close()
        broker.kill()
        broker.wait()
