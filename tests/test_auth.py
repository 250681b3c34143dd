"""CURVE over real sockets on loopback: the authentication matrix, revocation, fail-closed, and
that no command text or file content crosses the wire in clear (SPEC section 7)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import zmq

from broker.auth import ZAP_DOMAIN, KeyRing, ZapThread
from protocol import Error, Hello, Ready, Load, Workers, decode, encode
from rakeauth.client import ClientCurve
from rakeauth.keys import make_keypair, read_keys, read_secret
from tests.procs import command, submit, wait_until
from tests.tap import Tap

pytestmark = pytest.mark.timeout(60)
MARKER = "rake-secret-marker-" + os.urandom(6).hex()


class Keys:
    """A broker key pair, worker w1 and submitter alice listed, and unlisted mallory."""

    def __init__(self, root: Path):
        self.root = root
        for d in ("subs", "workers"):
            (root / d).mkdir(parents=True)
        for name in ("broker", "w1", "alice", "mallory"):
            make_keypair(str(root), name)
        shutil.copy(root / "w1.key", root / "workers" / "w1.key")
        shutil.copy(root / "alice.key", root / "subs" / "alice.key")

    def secret(self, name: str) -> str:
        return str(self.root / f"{name}.key_secret")

    def public(self, name: str) -> str:
        return str(self.root / f"{name}.key")

    def flags(self, name: str, server: str = "broker") -> list[str]:
        return ["--curve-key", self.secret(name), "--server-key", self.public(server)]

    def curve(self, name: str, server: str = "broker") -> ClientCurve:
        public, secret = read_secret(self.secret(name))
        return ClientCurve(public, secret, read_keys(self.public(server))[0])


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path / "keys")


def start_broker(procs, keys: Keys, log: Path) -> tuple[subprocess.Popen, str]:
    proc = procs.start(command("rake-broker") + [
        "--bind", "tcp://127.0.0.1:*", "--curve-secret", keys.secret("broker"),
        "--submitter-keys", str(keys.root / "subs"), "--worker-keys", str(keys.root / "workers")],
        stdout=subprocess.PIPE, stderr=log.open("wb"))
    return proc, proc.stdout.readline().decode().strip()


def dealer(ctx: zmq.Context, endpoint: str, curve: ClientCurve | None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    sock.connect(endpoint)
    return sock


def ask_table(sock: zmq.Socket, wait: float = 10.0):
    """The broker's answer to HELLO (a whole Workers table, or an Error), or None if it says
    nothing. A delta pushed earlier (a worker's row changed) may come first: not an answer."""
    sock.send_multipart(encode(Hello(version="test")))
    deadline = time.monotonic() + wait
    while sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        msg = decode(sock.recv_multipart())[0]
        if not isinstance(msg, Workers) or msg.full:
            return msg
    return None


def worker_ids(endpoint: str, keys: Keys) -> list[str]:
    with zmq.Context() as ctx:
        sock = dealer(ctx, endpoint, keys.curve("alice"))
        answer = ask_table(sock)
        sock.close()
    assert isinstance(answer, Workers), answer
    return [w.name for w in answer.workers]


def rakefile(work: Path, command_line: str = "echo built on $RAKE_WORKER") -> Path:
    work.mkdir(exist_ok=True)
    (work / "input.txt").write_text(MARKER + " file content\n")
    (work / "Rakefile").write_text(f"actionset1:\n\tremote-{command_line}\n\t\trequires input.txt\n")
    return work


@pytest.fixture
def curve_cluster(procs, keys, tmp_path):
    """A CURVE broker and worker w1 with its listed key: (endpoint, broker log)."""
    log = tmp_path / "broker.log"
    _, endpoint = start_broker(procs, keys, log)
    procs.worker(endpoint, "w1", tmp_path / "w1", 1, *keys.flags("w1"))
    assert wait_until(lambda: " joined" in log.read_text(), 15), log.read_text()
    return endpoint, log


# ---- the matrix -----------------------------------------------------------------------------
def test_the_listed_keys_run_a_remote_action_end_to_end(curve_cluster, keys, tmp_path):
    endpoint, _ = curve_cluster
    work = rakefile(tmp_path / "work", "cat input.txt; echo built on $RAKE_WORKER")
    res = submit(["--broker", endpoint, *keys.flags("alice")], work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{MARKER} file content\nbuilt on w1\n".encode()


def test_keys_also_come_from_the_environment(curve_cluster, keys, tmp_path):
    endpoint, _ = curve_cluster
    res = submit(["--broker", endpoint], rakefile(tmp_path / "work"),
                 RAKE_CURVE_KEY=keys.secret("alice"), RAKE_SERVER_KEY=keys.public("broker"))
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("case,flags,why", [
    ("no key", [], b"handshake failed: not a rake broker, or one that requires CURVE keys"),
    ("unknown key", ["mallory"], b"the broker refused our key"),
    ("wrong server key", ["alice", "mallory"], b"CURVE handshake failed"),
    ("worker key used to submit", ["w1"], b"a worker key may not send HELLO"),
])
def test_a_submission_without_the_right_keys_gets_nothing_through(curve_cluster, keys, tmp_path, case, flags, why):
    endpoint, log = curve_cluster
    work = rakefile(tmp_path / "work", f"touch ran-{case.replace(' ', '-')}")
    args = keys.flags(*flags) if flags else []
    res = submit(["--broker", endpoint, "--connect-timeout", "1", *args], work)
    assert res.returncode == 69, res.stderr
    assert why in res.stderr, res.stderr
    assert not list((tmp_path / "w1").rglob("ran-*")) and not list(work.glob("ran-*"))


def test_a_null_client_against_a_curve_broker_gets_nothing(curve_cluster):
    endpoint, log = curve_cluster
    with zmq.Context() as ctx:
        sock = dealer(ctx, endpoint, None)
        assert ask_table(sock, wait=1.5) is None
        sock.close()
    assert "joined" in log.read_text() and log.read_text().count(" joined") == 1


def test_submitter_key_cannot_register_a_worker(curve_cluster, keys, procs, tmp_path):
    endpoint, log = curve_cluster
    procs.worker(endpoint, "impostor", tmp_path / "imp", 1, *keys.flags("alice"))
    assert wait_until(lambda: "refused READY" in log.read_text(), 10), log.read_text()
    assert worker_ids(endpoint, keys) == ["w1"]
    with zmq.Context() as ctx:     # and by hand: READY with a submitter key is answered ERROR
        sock = dealer(ctx, endpoint, keys.curve("alice"))
        sock.send_multipart(encode(Ready(name="fake", host="h", version="1",
                                         load=Load(queue=0, running=0, slots=64, seq=1))))
        assert sock.poll(3000)
        assert isinstance(decode(sock.recv_multipart())[0], Error)
        sock.close()
    assert worker_ids(endpoint, keys) == ["w1"]


def test_an_unknown_worker_key_never_joins_and_the_worker_says_why_once(curve_cluster, keys, procs, tmp_path):
    endpoint, log = curve_cluster
    worker_log = tmp_path / "intruder.log"
    (tmp_path / "intr").mkdir()
    intruder = procs.start(command("rake-worker") + ["--broker", endpoint, "--name", "intruder", "--workdir",
                                                     str(tmp_path / "intr"), *keys.flags("mallory")],
                           stdout=subprocess.DEVNULL, stderr=worker_log.open("wb"))
    assert wait_until(lambda: "refused CURVE peer" in log.read_text(), 10), log.read_text()
    assert worker_ids(endpoint, keys) == ["w1"]
    time.sleep(2.0)   # ten of the tests' heartbeats, each one dropped
    intruder.terminate()
    intruder.wait(timeout=20)
    said = worker_log.read_text()
    assert said.count("broker not reachable") == 1 and "--worker-keys" in said, said


# ---- revocation -----------------------------------------------------------------------------
def test_a_revoked_submitter_key_stops_working_at_once(curve_cluster, keys, tmp_path, procs):
    endpoint, log = curve_cluster
    with zmq.Context() as ctx:
        sock = dealer(ctx, endpoint, keys.curve("alice"))
        assert isinstance(ask_table(sock), Workers)
        os.unlink(keys.root / "subs" / "alice.key")
        broker_pid = procs.procs[0].pid
        os.kill(broker_pid, signal.SIGHUP)
        assert wait_until(lambda: "keys loaded: 1 worker, 0 submitter" in log.read_text(), 10)
        assert ask_table(sock, wait=1.0) is None        # the live connection is refused too
        sock.close()
    res = submit(["--broker", endpoint, "--connect-timeout", "2", *keys.flags("alice")],
                 rakefile(tmp_path / "work"))
    assert res.returncode == 69 and b"refused our key" in res.stderr, res.stderr


def test_a_revoked_worker_key_is_dropped_from_the_table_without_a_signal(curve_cluster, keys):
    endpoint, log = curve_cluster
    assert worker_ids(endpoint, keys) == ["w1"]
    os.unlink(keys.root / "workers" / "w1.key")      # noticed by the once-a-second look
    assert wait_until(lambda: "left: its key was revoked" in log.read_text(), 5), log.read_text()
    assert worker_ids(endpoint, keys) == []


# ---- fail closed ----------------------------------------------------------------------------
def curve_router(ctx: zmq.Context, keys: Keys) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, read_secret(keys.secret("broker"))[1])
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    sock.bind("tcp://127.0.0.1:*")
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def gets_through(router: zmq.Socket, endpoint: str, curve: ClientCurve, ctx: zmq.Context) -> bool:
    client = dealer(ctx, endpoint, curve)
    client.send(b"ping")
    ok = bool(router.poll(1000))
    if ok:
        router.recv_multipart()
    client.close()
    return ok


def test_with_no_authenticator_running_nothing_is_accepted(keys):
    with zmq.Context() as ctx:
        router, endpoint = curve_router(ctx, keys)
        assert not gets_through(router, endpoint, keys.curve("alice"), ctx)
        router.close()


def test_once_the_authenticator_stops_new_peers_are_refused(keys):
    with zmq.Context() as ctx:
        zap = ZapThread(ctx, KeyRing(str(keys.root / "subs"), str(keys.root / "workers"), print), print)
        router, endpoint = curve_router(ctx, keys)
        assert gets_through(router, endpoint, keys.curve("alice"), ctx)   # control: it works
        zap.stop()
        assert not gets_through(router, endpoint, keys.curve("alice"), ctx)
        router.close()


def test_a_key_listed_in_both_roles_is_refused_for_that_reason_by_name(keys):
    shutil.copy(keys.root / "alice.key", keys.root / "workers" / "alice.key")
    lines = []
    with zmq.Context() as ctx:
        zap = ZapThread(ctx, KeyRing(str(keys.root / "subs"), str(keys.root / "workers"), lines.append), lines.append)
        try:
            router, endpoint = curve_router(ctx, keys)
            assert not gets_through(router, endpoint, keys.curve("alice"), ctx)
            router.close()
        finally:
            zap.stop()
    refusals = [line for line in lines if "refused CURVE peer" in line]
    assert refusals and "key alice: listed as both worker and submitter" in refusals[0], lines
    assert "not in --worker-keys" not in refusals[0]


# ---- encryption -----------------------------------------------------------------------------
def run_through_tap(procs, tmp_path, endpoint: str, worker_flags: list[str], submit_flags: list[str]) -> bytes:
    tap = Tap(endpoint)
    try:
        procs.worker(tap.endpoint, "tapped", tmp_path / "tapped", 1, *worker_flags)
        work = rakefile(tmp_path / "work", f"cat input.txt; echo {MARKER} in the command")
        res = submit(["--broker", tap.endpoint, *submit_flags], work)
        assert res.returncode == 0, res.stderr
        assert res.stdout.count(MARKER.encode()) == 2
        with tap.lock:
            return bytes(tap.seen)
    finally:
        tap.close()


def test_curve_traffic_shows_no_command_text_or_file_content(procs, keys, tmp_path):
    _, endpoint = start_broker(procs, keys, tmp_path / "broker.log")
    seen = run_through_tap(procs, tmp_path, endpoint, keys.flags("w1"), keys.flags("alice"))
    assert len(seen) > 1000                 # the run did cross the tap
    assert MARKER.encode() not in seen
    assert b"input.txt" not in seen and b"RAKE/1" not in seen


def test_without_curve_the_tap_does_see_the_marker(procs, tmp_path):
    """The control for the test above: the tap would catch plain text."""
    _, endpoint = procs.broker()
    seen = run_through_tap(procs, tmp_path, endpoint, [], [])
    assert MARKER.encode() in seen


def test_brokers_found_through_hosts_are_reached_with_the_keys(curve_cluster, keys, tmp_path):
    endpoint, _ = curve_cluster
    work = rakefile(tmp_path / "work")
    port = endpoint.rsplit(":", 1)[1]
    (work / "Rakefile").write_text(f"HOSTS = 127.0.0.1:{port}\n" + (work / "Rakefile").read_text())
    res = submit(keys.flags("alice"), work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"built on w1\n"
