"""End to end on loopback: finding a broker among the HOSTS, or running with none."""

from __future__ import annotations

import socket
import time

import pytest

from tests.procs import submit
from tests.cluster_helpers import cluster, write_rakefile


@pytest.mark.timeout(60)
def test_unreachable_broker_exits_69_naming_what_it_tried(tmp_path):
    work = write_rakefile(tmp_path / "w", "PORT = 1\nHOSTS = localhost 127.0.0.1:2\nactionset1:\n\tremote-true\n")
    start = time.monotonic()
    res = submit(["--connect-timeout", "1"], cwd=work)
    assert res.returncode == 69, res.stderr
    assert time.monotonic() - start < 20
    assert b"tcp://localhost:1" in res.stderr and b"tcp://127.0.0.1:2" in res.stderr
    # Says how to start one, at the port the Rakefile names (not the default 6238).
    assert b"start one with 'rake-broker --bind tcp://127.0.0.1:1'" in res.stderr
    assert b"'rake-worker --broker tcp://localhost:1'" in res.stderr and b"6238" not in res.stderr
    assert b"Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_dead_first_host_is_skipped_with_one_warning(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    work = write_rakefile(tmp_path / "w", f"HOSTS = 127.0.0.1:1 localhost:{port}\nactionset1:\n\tremote-echo hi\n")
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"
    assert res.stderr.count(b"skipping broker tcp://127.0.0.1:1") == 1


@pytest.mark.timeout(60)
def test_a_silent_first_host_costs_the_connect_timeout_then_the_next_that_answered_is_used(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    with socket.socket() as silent:   # accepts connections and never speaks: a frozen broker
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hosts = f"127.0.0.1:{silent.getsockname()[1]} 127.0.0.1:{port}"
        work = write_rakefile(tmp_path / "w", f"HOSTS = {hosts}\nactionset1:\n\tremote-echo hi\n")
        res = submit(["--connect-timeout", "1"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"
    assert res.stderr.count(b"skipping broker") == 1 and b"no answer in time" in res.stderr


@pytest.mark.timeout(60)
def test_a_silent_only_host_is_not_advised_to_start_a_broker_as_if_nothing_listened(tmp_path):
    with socket.socket() as silent:   # something listens: "start one there" alone would fail
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        where = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo hi\n")
        res = submit(["--connect-timeout", "0.5", "--broker", where], cwd=work)
    assert res.returncode == 69
    assert f"if what listens at {where} is a broker, it is stopped or too busy".encode() in res.stderr


@pytest.mark.timeout(60)
def test_two_host_entries_naming_one_broker_are_not_mistaken_for_silence(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    work = write_rakefile(tmp_path / "w", f"HOSTS = 127.0.0.1:{port} localhost:{port}\nactionset1:\n\tremote-echo hi\n")
    res = submit(["--connect-timeout", "2"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n" and b"skipping broker" not in res.stderr


@pytest.mark.timeout(30)
def test_local_only_rakefile_never_contacts_a_broker(tmp_path):
    work = write_rakefile(tmp_path / "w", "HOSTS = 127.0.0.1:1\nactionset1:\n\techo local > made.txt\n")
    res = submit([], cwd=work, RAKE_BROKER="tcp://127.0.0.1:1")
    assert res.returncode == 0, res.stderr
    assert (work / "made.txt").read_text() == "local\n"


@pytest.mark.timeout(30)
def test_the_answer_a_submitter_takes_is_the_first_its_broker_sent_not_what_followed():
    """While an earlier HOSTS entry stays silent, the broker that answered goes on sending
    (more of its table, deltas): those are the session's to read, not a new answer."""
    import threading

    import zmq
    from protocol import WorkerInfo, Workers, decode as decode_frames, encode as encode_msg
    from submitter.link import Candidate, find_broker

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    row = lambda name: WorkerInfo(id=name.encode().hex(), name=name, host="h", slots=1, queue=0, running=0, seq=1)  # noqa: E731

    def answer_then_more():
        peer, *hello = router.recv_multipart()
        router.send_multipart([peer, *encode_msg(Workers(full=True, workers=tuple(map(row, ("w1", "w2", "w3")))))])
        router.send_multipart([peer, *encode_msg(Workers(full=False, workers=(row("w2"),)))])
    server = threading.Thread(target=answer_then_more, daemon=True)
    server.start()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        candidates = [Candidate(f"tcp://127.0.0.1:{silent.getsockname()[1]}", "HOSTS, line 1"),
                      Candidate(f"tcp://127.0.0.1:{port}", "HOSTS, line 1")]
        sock, chosen = find_broker(ctx, candidates, b"S12345678", 1.0, "test", lambda s: None)
    try:
        assert chosen.answer.full and [w.name for w in chosen.answer.workers] == ["w1", "w2", "w3"]
        assert sock.poll(5000)
        delta, _ = decode_frames(sock.recv_multipart())   # still there for the session
        assert not delta.full and [w.name for w in delta.workers] == ["w2"]
    finally:
        sock.close(linger=0)
        router.close()
        server.join(5)


@pytest.mark.timeout(60)
def test_a_first_host_whose_broker_has_no_worker_is_skipped_for_one_that_has(procs, tmp_path):
    _, empty = procs.broker()
    endpoint = cluster(procs, tmp_path, names=("w1",))
    hosts = " ".join(e[len("tcp://"):] for e in (empty, endpoint))
    work = write_rakefile(tmp_path / "w", f"HOSTS = {hosts}\nactionset1:\n\tremote-echo hi\n")
    res = submit(["--worker-wait", "30"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"
    assert res.stderr.count(f"skipping broker {empty} (from HOSTS, line 1): no worker has joined it".encode()) == 1


@pytest.mark.timeout(60)
def test_an_only_broker_without_workers_is_named_with_how_to_start_one(procs, tmp_path):
    _, empty = procs.broker()
    work = write_rakefile(tmp_path / "w", f"HOSTS = {empty[len('tcp://'):]}\nactionset1:\n\tremote-echo hi\n")
    res = submit(["--worker-wait", "1"], cwd=work)
    assert res.returncode == 69, res.stderr
    assert (f"no worker joined broker {empty} (from HOSTS, line 1) in 1s: start one with "
            f"'rake-worker --broker {empty}'").encode() in res.stderr
    assert b"skipping broker" not in res.stderr and b"Traceback" not in res.stderr
