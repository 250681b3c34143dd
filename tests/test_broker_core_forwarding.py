"""The broker core forwarding jobs, results and cancels between peers."""

from broker.core import Send
from protocol import Bye, Cancel, Error, FileRef, Heartbeat, Job, Result, decode, encode

from tests.broker_core_helpers import SUB, TIMING, W1, W2, cluster, core, decoded, messages_to, ready


# ---- jobs, results, cancels --------------------------------------------------------------

def test_a_job_is_forwarded_with_the_real_sender_as_client_and_the_same_blob_frames():
    b = cluster()
    blobs = [b"int x;\n", bytearray(b"#pragma once\n")]
    job = Job(job=9, worker=W1, command="cc -c x.c", client="forged",
              files=(FileRef(path="x.c", mode=0o644, blob=0), FileRef(path="x.h", mode=0o644, blob=1)))
    [send] = b.on_frames(1.0, SUB, encode(job, blobs))
    assert send.peer == W1
    fwd, fwd_blobs = decode(send.frames)
    assert fwd.client == SUB
    assert fwd == Job(**{**job.__dict__, "client": SUB})
    assert send.frames[2] is blobs[0] and send.frames[3] is blobs[1]
    assert fwd_blobs[0] is blobs[0]
    assert b.stats["jobs"] == 1


def test_a_job_dropped_at_a_full_queue_is_answered_worker_busy_so_it_is_placed_again():
    b = cluster()
    [send] = b.on_frames(1.0, SUB, encode(Job(job=9, worker=W1, command="true")))
    [busy] = messages_to(b.on_full(send), SUB, Error)
    assert (busy.code, busy.job) == ("worker-busy", 9) and b.stats["dropped_full"] == 1
    assert (SUB, 9) not in b.flight.jobs
    beat = Send(W1, encode(Heartbeat()))   # anything else dropped is only counted
    assert b.on_full(beat) == [] and b.stats["dropped_full"] == 2


def test_a_job_to_an_unknown_worker_gets_an_unknown_worker_error_with_the_job_id():
    b = cluster()
    [(peer, msg, _)] = decoded(b.on_frames(1.0, SUB, encode(Job(job=77, worker="nobody", command="x"))))
    assert peer == SUB
    assert isinstance(msg, Error) and msg.code == "unknown-worker" and msg.job == 77


def test_a_job_from_a_worker_is_refused():
    b = cluster()
    [(peer, msg, _)] = decoded(b.on_frames(1.0, W2, encode(Job(job=1, worker=W1, command="x"))))
    assert peer == W2 and isinstance(msg, Error) and msg.job == 1
    assert b.stats["jobs"] == 0


def test_a_result_is_forwarded_to_its_client_with_the_real_worker_and_the_same_blobs():
    b = cluster()
    out, err, obj = b"hello\n", b"\xff\x00warn", b"\x7fELF"
    res = Result(job=9, client=SUB, status="exited", stdout=0, stderr=1, worker="forged",
                 outputs=(FileRef(path="x.o", mode=0o644, blob=2),))
    blobs = [out, err, obj]
    [send] = b.on_frames(2.0, W1, encode(res, blobs))
    assert send.peer == SUB
    fwd, _ = decode(send.frames)
    assert fwd.worker == W1 and fwd.job == 9
    assert all(a is b_ for a, b_ in zip(send.frames[2:], blobs))
    assert b.stats["results"] == 1


def test_a_result_for_a_submitter_that_is_gone_is_dropped_and_counted():
    b = cluster()
    b.on_frames(1.0, SUB, encode(Bye(reason="done")))
    [send] = b.on_frames(2.0, W1, encode(Result(job=1, client=SUB, status="exited")))
    assert b.stats["results_dropped"] == 1 and b.stats["results"] == 0
    # The worker is told again that the submitter is gone (it may have missed that CANCEL,
    # cut off): it drops its results for it rather than resend them for 20 windows.
    cancel, _ = decode(send.frames)
    assert send.peer == W1 and isinstance(cancel, Cancel) and cancel.everything and cancel.client == SUB


def test_after_a_restart_a_result_for_a_submitter_not_back_yet_cancels_nothing():
    """It may say HELLO in a moment (a broker restart): its jobs must not be killed."""
    b = core()
    ready(b, W1, 0.0, name="w1", slots=8)
    assert b.on_frames(1.0, W1, encode(Result(job=1, client=SUB, status="exited"))) == []
    assert b.stats["results_dropped"] == 1


def test_a_result_from_a_peer_that_is_not_a_worker_gets_unknown_peer():
    b = cluster()
    sends = b.on_frames(1.0, "7777", encode(Result(job=1, client=SUB, status="exited")))
    assert [m.code for m in messages_to(sends, "7777", Error)] == ["unknown-peer"]


def test_a_cancel_is_forwarded_to_the_worker_with_the_real_sender_as_client():
    b = cluster()
    [(peer, msg, _)] = decoded(b.on_frames(1.0, SUB, encode(Cancel(job=3, worker=W2, kill=True))))
    assert peer == W2 and msg == Cancel(job=3, worker=W2, kill=True, client=SUB)


def test_a_cancel_for_an_unknown_worker_is_dropped():
    b = cluster()
    assert b.on_frames(1.0, SUB, encode(Cancel(job=3, worker="nobody"))) == []


def test_a_workers_push_dropped_at_a_full_queue_is_made_good_by_the_whole_table():
    """A delta's `gone` is said once: lost, the submitter would wait for ever on that worker."""
    from protocol import Workers
    b = cluster()
    b.on_frames(1.0, W2, encode(Bye(reason="stopping")))
    [push] = [s for s in b.on_tick(1.0) if s.peer == SUB and isinstance(decode(s.frames)[0], Workers)]
    assert decode(push.frames)[0].gone == (W2,)
    assert b.on_full(push) == []
    later = messages_to(b.on_tick(1.0 + 2 * TIMING.push_delay), SUB, Workers)
    assert [(m.full, [w.id for w in m.workers]) for m in later] == [(True, [W1])]   # W2 absent: gone
