"""The embedded cluster's in-process delivery: its broker, worker and submitter hand each other
Parcels (messages as they are), never frames; file transfers still arrive whole."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import zmq

from broker.core import BrokerCore
from protocol import EncodeError, Job, Parcel, Result, stamped
from protocol.timing import Timing
from submitter.embedded import EmbeddedCluster
from worker.core import Send, WorkerCore

from tests.procs import submit

SUB, WORKER = "53" * 9, "57" * 9


def ready_from(local: bool):
    """A worker's READY: a Parcel from one in this process, frames from one elsewhere."""
    worker = WorkerCore("w", "h", 1, Timing(), 0.0)
    worker.local = local
    return worker.greet(0.0)[0].frames


def test_the_broker_forwards_a_local_submitters_job_to_a_local_worker_as_a_stamped_parcel():
    core = BrokerCore(Timing(), 0.0)
    core.local.update({SUB, WORKER})
    core.on_parcel(0.0, WORKER, ready_from(local=True))
    out = core.on_parcel(0.0, SUB, Parcel(Job(job=7, worker=WORKER, command="true"), []))
    assert [type(s.frames) for s in out] == [Parcel]
    sent = out[0].frames.msg
    assert (out[0].peer, sent.job, sent.client) == (WORKER, 7, SUB)
    assert core.meter.bytes_in == 0   # nothing came as frames


def test_the_broker_still_encodes_for_a_peer_elsewhere():
    core = BrokerCore(Timing(), 0.0)
    core.local.add(SUB)
    core.on_frames(0.0, WORKER, ready_from(local=False))
    out = core.on_parcel(0.0, SUB, Parcel(Job(job=7, worker=WORKER, command="true"), []))
    assert len(out) == 1 and isinstance(out[0].frames, list)


def test_a_local_worker_sends_parcels_and_takes_them():
    core = WorkerCore("w", "h", 1, Timing(), 0.0)
    core.local = True
    assert all(isinstance(s.frames, Parcel) for s in core.greet(0.0) if isinstance(s, Send))
    started = core.on_frames(0.0, Parcel(Job(job=1, worker="x", command="true", client=SUB), []))
    assert [type(a).__name__ for a in started] == ["Start"]


def test_stamping_a_parcel_copies_the_message_and_refuses_what_the_wire_would():
    job = Job(job=1, worker=WORKER, command="true")
    copy = stamped(job, client=SUB)
    assert (copy.client, job.client, copy) == (SUB, "", Job(job=1, worker=WORKER, command="true", client=SUB))
    with pytest.raises(EncodeError):
        stamped(job, nosuchfield=SUB)
    with pytest.raises(EncodeError):
        stamped(job, client="x" * 1000)


@pytest.mark.timeout(60)
def test_a_job_on_the_embedded_cluster_goes_and_comes_back_as_parcels_never_frames():
    cluster = EmbeddedCluster(zmq.Context.instance(), Timing(), slots=1)
    link = None
    try:
        link, table = cluster.connect(b"Stest", "test", 10)
        link.send(link.pack(Job(job=1, worker=table.workers[0].id, command="echo hi")))
        got, deadline = None, time.monotonic() + 30
        poller = zmq.Poller()
        for item in cluster.poll_items():
            poller.register(item, zmq.POLLIN)
        while got is None and time.monotonic() < deadline:
            cluster.handle(dict(poller.poll(max(0.0, cluster.next_deadline() - time.monotonic()) * 1000 + 1)))
            while link.waiting():
                item = link.receive()
                assert isinstance(item, Parcel)
                if isinstance(item.msg, Result):
                    got = item
        assert got is not None and got.msg.status == "exited"
        assert bytes(got.blobs[got.msg.stdout]) == b"hi\n"
        meter = cluster.broker.core.meter
        assert meter.msgs_in[Job] == 1 and meter.msgs_in[Result] == 1 and meter.bytes_in == 0
    finally:
        if link is not None:
            link.close()
        cluster.close()


@pytest.mark.timeout(120)
def test_files_too_big_to_ride_inline_cross_the_embedded_cluster_whole(tmp_path):
    """Inputs and outputs over 1 MiB travel as WANT and CHUNK messages (frames), beside the
    Parcels: each arrives whole and checked."""
    data = os.urandom(3 << 20)
    (tmp_path / "big.in").write_bytes(data)
    (tmp_path / "Rakefile").write_text(
        "actionset1:\n\tremote-cat big.in big.in > big.out\n\t\trequires big.in\n")
    done = submit([], tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    got = (tmp_path / "big.out").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data + data).digest()
