"""A peer speaking the protocol by hand: hostile names are refused and the worker keeps serving."""

from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest
import zmq

from protocol import FileRef, Hello, Job, Result, Want, Workers, decode, encode
from tests.procs import submit, wait_until


def recv_until(sock: zmq.Socket, kind: type, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            msg, blobs = decode(sock.recv_multipart())
            if isinstance(msg, kind):
                return msg, blobs
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


@pytest.fixture
def raw_submitter(procs, tmp_path):
    _, endpoint = procs.broker()
    procs.worker(endpoint, "w1", tmp_path / "scratch", slots=1)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        def table():
            sock.send_multipart(encode(Hello(version="test")))
            msg, _ = recv_until(sock, Workers)
            return msg.workers
        assert wait_until(lambda: table(), 15)
        yield sock, table()[0].id
    finally:
        sock.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["/etc/evil", "../evil", "a/../../evil", "", "nul\0name", "dir/"])
def test_worker_refuses_a_hostile_input_name_and_keeps_serving(raw_submitter, tmp_path, name):
    sock, worker = raw_submitter
    bad = Job(job=1, worker=worker, command="cat * > /dev/null",
              files=(FileRef(path=name, mode=0o644, blob=0),))
    sock.send_multipart(encode(bad, [b"payload"]))
    result, _ = recv_until(sock, Result)
    assert (result.job, result.status) == (1, "error")
    assert "refused" in result.error
    good = Job(job=2, worker=worker, command="cat in.txt", files=(FileRef("in.txt", 0o644, 0),))
    sock.send_multipart(encode(good, [b"still serving\n"]))
    result, blobs = recv_until(sock, Result)
    assert (result.job, result.status, result.code) == (2, "exited", 0)
    assert bytes(blobs[result.stdout]) == b"still serving\n"
    assert not (tmp_path / "evil").exists()


@pytest.mark.timeout(60)
def test_broker_answers_garbage_with_an_error_and_keeps_routing(raw_submitter):
    sock, worker = raw_submitter
    sock.send_multipart([b"RAKE/1", b"\xc1not msgpack"])
    sock.send_multipart([b"HTTP/1.1", b"GET /"])
    sock.send_multipart(encode(Job(job=3, worker=worker, command="echo ok")))
    result, blobs = recv_until(sock, Result)
    assert bytes(blobs[result.stdout]) == b"ok\n"


@pytest.mark.timeout(60)
def test_a_bug_in_handling_one_message_costs_that_message_not_the_broker(monkeypatch):
    """In process, with the core made to fail on STATUS: the loop logs it and goes on."""
    import io
    import threading
    from broker.core import BrokerCore
    from broker.loop import BrokerLoop
    from protocol import Status
    from protocol.timing import Timing
    from rake_common.logsetup import Log

    def broken(self, *args):
        raise KeyError("planted")
    monkeypatch.setattr(BrokerCore, "_handlers", {**BrokerCore._handlers, Status: broken})
    logged = io.StringIO()
    loop = BrokerLoop("tcp://127.0.0.1:*", Timing(), Log("rake-broker", stream=logged))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    client = zmq.Context.instance().socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    try:
        client.connect(loop.endpoint)
        client.send_multipart(encode(Status()))
        client.send_multipart(encode(Hello(version="0.1.0", name="after")))
        assert isinstance(recv_until(client, Workers)[0], Workers)   # still routing
        assert "broker bug handling a message from" in logged.getvalue()
        assert "KeyError: 'planted'" in logged.getvalue() and loop.core.stats["bugs"] == 1
    finally:
        client.close()
        loop.stop()
        thread.join(10)


@pytest.mark.timeout(90)
def test_a_worker_stopped_with_file_chunks_still_queued_exits_cleanly(raw_submitter, procs, tmp_path):
    # Big chunks leave without a copy: zmq must be done with them before Python frees them
    # (the worker died of SIGSEGV at exit, 3 runs in 3, before ends_zmq).
    sock, worker = raw_submitter
    work = tmp_path / "work"
    work.mkdir()
    data = os.urandom(3 << 20)
    (work / "big.bin").write_bytes(data)
    (work / "Rakefile").write_text("actionset1:\n\tremote-wc -c big.bin\n\t\trequires big.bin\n")
    digest = hashlib.sha256(data).hexdigest()
    res = submit(["--broker", sock.getsockopt_string(zmq.LAST_ENDPOINT)], cwd=work)
    assert res.returncode == 0, res.stderr   # the input is in the worker's cache now
    for _ in range(1500):   # a peer that asks for it again and again, and never reads
        sock.send_multipart(encode(Want(to=worker, digest=digest, upto=2 ** 62, restart=True)))
    time.sleep(0.3)
    proc = procs.procs[1]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
