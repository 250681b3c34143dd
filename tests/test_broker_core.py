"""Tests of the broker's logic (broker/core.py, broker/table.py, SPEC sections 1, 4 and 6).

No sockets: frames go in with a peer id and a fake `now`, (peer, frames) pairs come out.
"""

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core import BrokerCore, Send
from protocol import (
    SIGNATURE, Bye, Cancel, Error, FileRef, Heartbeat, Hello, Job, Load, Ready, Result, Workers,
    decode, encode,
)
from protocol.codec import MAX_HEADER
from protocol.timing import Timing

TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
W1, W2, SUB, SUB2 = "57aa01", "57bb02", "53cc03", "53dd04"


def load(queue=0, running=0, slots=4, seq=1, seen=()):
    return Load(queue=queue, running=running, slots=slots, seq=seq, seen=seen)


def core(now=0.0):
    return BrokerCore(TIMING, now)


def ready(b, peer, now, name=None, **load_kw):
    return b.on_frames(now, peer, encode(Ready(name=name or peer, host="host", version="0.1.0",
                                               load=load(**load_kw))))


def hello(b, peer, now):
    return b.on_frames(now, peer, encode(Hello(version="0.1.0", name="sub")))


def decoded(sends):
    """[(peer, message, blobs)] from a list of Send."""
    return [(s.peer, *decode(s.frames)) for s in sends]


def messages_to(sends, peer, kind=object):
    return [m for p, m, _ in decoded(sends) if p == peer and isinstance(m, kind)]


def cluster(now=0.0):
    """A broker with two workers and one submitter that already has the table."""
    b = core(now)
    ready(b, W1, now, name="w1", slots=8)
    ready(b, W2, now, name="w2", slots=2)
    hello(b, SUB, now)
    b.on_tick(now + TIMING.push_delay)   # flush the join pushes
    return b


# ---- joining -----------------------------------------------------------------------------


def test_a_worker_that_reconnects_unmissed_has_the_jobs_it_never_received_sent_again():
    """It found us silent and reconnected before we missed it: JOBs its old connection held
    are gone, and nothing else would ever answer them (the run would hang)."""
    b = cluster()
    for n in (1, 2, 3):
        b.on_frames(1.0, SUB, encode(Job(job=n, worker=W1, command="true")))
    b.on_frames(1.0, SUB2, encode(Job(job=7, worker=W1, command="true")))
    again = ready(b, W1, 2.0, name="w1", slots=8, seen=((SUB, 1),))
    busy = [(p, m.job) for p, m, _ in decoded(again) if isinstance(m, Error)]
    assert sorted(busy) == [(SUB, 2), (SUB, 3), (SUB2, 7)]
    assert all(m.code == "worker-busy" for m in messages_to(again, SUB, Error))
    assert list(b.flight.jobs) == [(SUB, 1)]   # what it has is still its own to answer



def test_a_job_resent_after_a_later_one_is_sent_again_if_a_reconnect_loses_it_too():
    """Bounced with worker-busy, job 1 went again after job 3 had: the READY's `seen` (3,
    the highest it holds) cannot say whether 1 arrived, so 1 is bounced again, never left
    unanswered for ever (a duplicate, should it have arrived, the worker ignores)."""
    b = cluster()
    for n in (1, 3, 1):
        b.on_frames(1.0, SUB, encode(Job(job=n, worker=W1, command="true")))
    again = ready(b, W1, 2.0, name="w1", slots=8, seen=((SUB, 3),))
    assert [(p, m.code, m.job) for p, m, _ in decoded(again) if isinstance(m, Error)] == [(SUB, "worker-busy", 1)]
    assert list(b.flight.jobs) == [(SUB, 3)]


def test_a_worker_reporting_the_largest_queue_still_leaves_every_table_encodable():
    b = core()
    ready(b, W1, 0.0, name="odd", queue=2**32 - 1, slots=1)
    hello(b, SUB, 0.1)
    b.on_frames(0.2, SUB, encode(Job(job=1, worker=W1, command="true")))   # counted in its row
    assert b.table.workers[W1].load.queue == 2**32 - 1
    b.on_tick(1.0)
    [answer] = decoded(hello(b, SUB2, 1.1))   # a table with that row in it: not a broker bug
    assert isinstance(answer[1], Workers) and answer[1].workers[0].queue == 2**32 - 1


def test_ready_registers_a_worker_and_hello_gets_the_full_table():
    b = core()
    [welcome] = messages_to(ready(b, W1, 0.0, name="w1", slots=8, queue=1, seq=4), W1)
    assert isinstance(welcome, Heartbeat) and welcome.welcome   # READY taken: any cancels came first
    assert b.table.role(W1) == "worker"
    [(peer, msg, _)] = decoded(hello(b, SUB, 0.1))
    assert peer == SUB and isinstance(msg, Workers) and msg.full
    [row] = msg.workers
    assert (row.id, row.name, row.slots, row.queue, row.seq, row.version) == (W1, "w1", 8, 1, 4, "0.1.0")
    assert b.table.role(SUB) == "submitter"


@pytest.mark.parametrize("kind", ["HELLO", "READY"])
def test_a_peer_beating_at_another_interval_is_refused_saying_both_and_not_registered(kind):
    b = core()
    if kind == "HELLO":
        msg = Hello(version="0.1.0", name="sub", heartbeat=5.0)
    else:
        msg = Ready(name="w", host="h", version="0.1.0", load=load(), heartbeat=0.2)
    [(peer, err, _)] = decoded(b.on_frames(0.0, W1, encode(msg)))
    assert peer == W1 and isinstance(err, Error) and err.code == "bad-timing"
    assert "the broker's heartbeat is 1 s and yours" in err.message and "--heartbeat" in err.message
    assert b.table.role(W1) is None


def test_a_peer_at_the_same_interval_or_not_saying_is_taken():
    b = core()
    assert messages_to(b.on_frames(0.0, SUB, encode(Hello(version="0.1.0", heartbeat=1.0))), SUB, Workers)
    assert messages_to(b.on_frames(0.0, SUB2, encode(Hello(version="0.1.0"))), SUB2, Workers)   # an older peer


def test_the_full_table_lists_workers_in_id_order():
    b = core()
    ready(b, W2, 0.0)
    ready(b, W1, 0.0)
    [(_, msg, _)] = decoded(hello(b, SUB, 0.0))
    assert [w.id for w in msg.workers] == [W1, W2]


def test_the_table_tells_each_submitter_its_own_seen_count():
    b = core()
    ready(b, W1, 0.0, seen=((SUB, 7), (SUB2, 3)))
    [(_, mine, _)] = decoded(hello(b, SUB, 0.0))
    [(_, theirs, _)] = decoded(hello(b, SUB2, 0.0))
    assert mine.workers[0].seen == 7 and theirs.workers[0].seen == 3


def test_a_joining_worker_is_pushed_to_submitters_after_the_push_delay():
    b = core()
    hello(b, SUB, 0.0)
    ready(b, W1, 1.0, name="w1")
    assert messages_to(b.on_tick(1.0 + TIMING.push_delay / 2), SUB, Workers) == []
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert not delta.full and [w.id for w in delta.workers] == [W1] and delta.gone == ()


# ---- heartbeats and load -----------------------------------------------------------------

def test_a_heartbeat_updates_the_load_and_a_delta_follows_after_the_push_delay():
    b = cluster()
    t = 0.5
    assert b.on_frames(t, W1, encode(Heartbeat(load=load(queue=5, running=4, slots=8, seq=2)))) == []
    assert b.table.workers[W1].load.queue == 5
    assert b.next_deadline() == pytest.approx(t + TIMING.push_delay)
    assert messages_to(b.on_tick(t + 0.01), SUB, Workers) == []
    [delta] = messages_to(b.on_tick(t + TIMING.push_delay), SUB, Workers)
    assert not delta.full
    [row] = delta.workers
    assert (row.id, row.queue, row.running, row.seq) == (W1, 5, 4, 2)


def test_several_heartbeats_within_the_push_delay_make_one_delta():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=1, slots=8, seq=2))))
    b.on_frames(1.005, W2, encode(Heartbeat(load=load(queue=1, slots=2, seq=2))))
    b.on_frames(1.01, W1, encode(Heartbeat(load=load(queue=2, slots=8, seq=3))))
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert {(w.id, w.queue) for w in delta.workers} == {(W1, 2), (W2, 1)}


def test_an_unchanged_heartbeat_pushes_nothing():
    b = cluster()
    same = b.table.workers[W1].load
    b.on_frames(1.0, W1, encode(Heartbeat(load=same)))
    assert b.pushes.due is None
    assert messages_to(b.on_tick(1.5), SUB, Workers) == []


def test_a_newer_heartbeat_with_the_same_state_pushes_nothing():
    b = cluster()
    same = b.table.workers[W1].load
    b.on_frames(1.0, W1, encode(Heartbeat(load=Load(**{**same.__dict__, "seq": same.seq + 1}))))
    assert b.table.workers[W1].load.seq == same.seq + 1
    assert messages_to(b.on_tick(1.5), SUB, Workers) == []


def test_a_stale_load_report_does_not_overwrite_a_newer_one():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=7, slots=8, seq=10))))
    b.on_tick(1.0 + TIMING.push_delay)
    b.on_frames(1.1, W1, encode(Heartbeat(load=load(queue=0, slots=8, seq=9))))
    assert b.table.workers[W1].load.queue == 7
    assert messages_to(b.on_tick(2.0), SUB, Workers) == []


def test_a_result_carrying_a_load_updates_the_table_too():
    b = cluster()
    res = Result(job=1, client=SUB, status="exited", load=load(queue=3, slots=8, seq=5))
    b.on_frames(1.0, W1, encode(res))
    assert b.table.workers[W1].load.seq == 5
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert delta.workers[0].queue == 3


def test_a_heartbeat_from_an_unknown_peer_gets_an_unknown_peer_error():
    b = core()
    [(peer, msg, _)] = decoded(b.on_frames(0.0, W1, encode(Heartbeat(load=load()))))
    assert peer == W1 and isinstance(msg, Error) and msg.code == "unknown-peer"
    assert b.table.role(W1) is None


def test_the_broker_heartbeats_every_peer_once_per_interval():
    b = core()
    ready(b, W1, 0.0)
    ready(b, W2, 0.0)
    hello(b, SUB, 0.0)       # the table answer counts as something sent to SUB at t=0, as
    first = decoded(b.on_tick(0.5))   # the welcome of each READY does to its worker
    assert {p for p, m, _ in first if isinstance(m, Heartbeat)} == set()
    assert {p for p, m, _ in first if isinstance(m, Workers)} == {SUB}   # the join delta
    assert {p for p, m, _ in decoded(b.on_tick(1.2))} == {W1, W2}
    assert b.on_tick(1.3) == []
    assert {p for p, m, _ in decoded(b.on_tick(1.5)) if isinstance(m, Heartbeat)} == {SUB}


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


# ---- liveness ----------------------------------------------------------------------------

def test_a_forwarded_job_counts_in_its_workers_row_for_every_submitter_at_the_next_push():
    """Submitters started together each saw every worker idle and all picked the same one."""
    b = cluster()
    hello(b, "53bb", 0.0)
    b.on_tick(TIMING.push_delay * 2)
    b.on_frames(1.0, SUB, encode(Job(job=7, worker=W1, command="x")))
    pushed = {s.peer: decode(s.frames)[0] for s in b.on_tick(1.0 + TIMING.push_delay) if s.peer in (SUB, "53bb")}
    row = {peer: next(w for w in msg.workers if w.id == W1) for peer, msg in pushed.items()}
    assert (row["53bb"].queue, row["53bb"].seen) == (1, 0)   # busier for the other submitter
    assert (row[SUB].queue, row[SUB].seen) == (1, 7)         # the sender's own job: seen, counted once


def test_a_silent_worker_expires_after_the_liveness_window_and_submitters_are_told():
    b = cluster()
    expiry = TIMING.heartbeat * TIMING.liveness
    # W2 and the submitter keep talking; W1 says nothing after t=0.
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W2, encode(Heartbeat()))
        b.on_frames(t, SUB, encode(Heartbeat()))
        b.on_tick(t)
    b.on_tick(expiry - 0.001)
    assert b.table.role(W1) == "worker"
    sends = b.on_tick(expiry + 0.001)
    assert b.table.role(W1) is None and b.table.role(W2) == "worker"
    [delta] = messages_to(sends, SUB, Workers)
    assert delta.gone == (W1,) and delta.workers == ()


def test_silence_excused_after_a_stopped_loop_drops_nobody_but_later_silence_still_counts():
    # The embedded cluster: broker, worker and submitter share a loop that was stopped for
    # ten liveness windows; when it runs again nobody has had a chance to speak.
    b = cluster()
    b.excuse_silence(30.0)
    b.on_tick(30.0)
    assert {b.table.role(p) for p in (W1, W2, SUB)} == {"worker", "submitter"}
    b.on_frames(31.0, W2, encode(Heartbeat()))
    b.on_frames(31.0, SUB, encode(Heartbeat()))
    b.on_tick(33.5)
    assert b.table.role(W1) is None and b.table.role(W2) == "worker"


def test_a_silent_submitter_is_forgotten_too_and_the_log_says_so():
    b = cluster()
    lines = []
    b.log = lines.append
    b.on_frames(0.0, SUB, encode(Job(job=1, worker=W1, command="x")))   # it had work here
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W1, encode(Heartbeat()))
        b.on_frames(t, W2, encode(Heartbeat()))
    b.on_tick(3.5)
    assert b.table.role(SUB) is None and b.table.role(W1) == "worker"
    assert lines == ["submitter sub dropped: silent for the liveness window (3s: gone, stopped, or on a link "
                     "too slow for --heartbeat 1); its jobs are cancelled"]
    hello(b, "53bb", 4.0)
    b.on_frames(4.1, "53bb", encode(Bye(reason="done")))   # a run that ended says bye: no line
    hello(b, "53cc", 4.0)                                   # one that chose another broker of
    b.on_tick(8.0)                                          # its HOSTS goes silent here: no line
    assert [line for line in lines if line.startswith("submitter")] == lines[:1]


def test_a_worker_saying_bye_is_announced_as_gone_at_the_next_tick():
    b = cluster()
    b.on_frames(1.0, W2, encode(Bye(reason="draining")))
    [delta] = messages_to(b.on_tick(1.0), SUB, Workers)
    assert delta.gone == (W2,)


def test_a_departure_goes_out_at_once_even_while_a_row_change_waits_to_be_coalesced():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=3, seq=2))))   # due at 1.0 + push_delay
    b.on_frames(1.001, W2, encode(Bye(reason="draining")))
    [delta] = messages_to(b.on_tick(1.002), SUB, Workers)
    assert delta.gone == (W2,)


def test_an_unroutable_worker_is_dropped_and_announced():
    b = cluster()
    b.on_unroutable(W1)
    assert b.stats["unroutable"] == 1
    [delta] = messages_to(b.on_tick(1.0), SUB, Workers)
    assert delta.gone == (W1,)


def test_right_after_our_own_stall_an_unroutable_worker_is_left_to_its_liveness():
    # Stopped (SIGSTOP) past the window, the broker finds its workers reconnecting: dropping
    # them as gone made submitters run their finished actions again.
    b = cluster()
    b.on_frames(0.5, SUB, encode(Job(job=7, worker=W1, command="true")))
    b.excuse_silence(5.0)
    b.on_frames(5.0, W2, encode(Heartbeat()))
    job = Send(W1, [], job=(SUB, 7))
    [busy] = messages_to(b.on_unroutable(W1, job), SUB, Error)
    assert (busy.code, busy.job) == ("worker-busy", 7)       # sent again shortly
    deltas = messages_to(b.on_tick(5.5), SUB, Workers)          # not dropped, not announced
    assert b.table.role(W1) == "worker" and all(W1 not in d.gone for d in deltas)
    b.on_frames(9.0, W2, encode(Heartbeat()))
    b.on_unroutable(W1, Send(W1, []))                          # a window later: gone as before
    assert b.table.role(W1) is None


def test_a_dropped_worker_that_comes_back_is_told_to_cancel_the_jobs_it_held():
    b = cluster()
    b.on_frames(0.5, SUB, encode(Job(job=7, worker=W1, command="true")))
    b.on_frames(0.5, SUB, encode(Job(job=8, worker=W2, command="true")))
    b.on_unroutable(W1)   # dropped: the submitter hears it is gone and runs job 7 elsewhere
    sends = ready(b, W1, 9.0, name="w1", slots=8, seq=50)
    [cancel] = messages_to(sends, W1, Cancel)
    assert (cancel.job, cancel.client, cancel.kill, cancel.everything) == (7, SUB, True, False)
    assert messages_to(ready(b, W1, 10.0, name="w1", seq=51), W1, Cancel) == []   # told once
    assert messages_to(ready(b, W2, 10.0, name="w2", seq=51), W2, Cancel) == []   # never dropped


def test_a_table_too_big_for_one_header_goes_in_pieces_that_each_fit():
    b = core()
    wide = "\U0001F600" * 250   # 4-byte characters: the largest rows the wire allows
    for i in range(700):
        b.on_frames(0.0, f"57{i:04x}", encode(Ready(name=f"{wide}{i:06d}", host=wide, version="v" * 64,
                                                     load=load())))
    b.on_tick(TIMING.push_delay)   # the join pushes: nobody to push to yet
    pieces = messages_to(hello(b, SUB, 1.0), SUB, Workers)
    assert len(pieces) == 3 and [p.more for p in pieces] == [True, True, False]
    assert all(p.full for p in pieces) and sum(len(p.workers) for p in pieces) == 700
    for i in range(700):   # every row changes at once: the delta comes in pieces too
        b.on_frames(2.0, f"57{i:04x}", encode(Heartbeat(load=load(queue=1, seq=2))))
    deltas = messages_to(b.on_tick(2.0 + TIMING.push_delay), SUB, Workers)
    assert len(deltas) == 3 and not any(d.full or d.more for d in deltas)


def test_a_worker_that_rejoins_is_not_reported_gone():
    b = cluster()
    ready(b, W1, 1.0, name="w1", slots=8, seq=50)
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert delta.gone == () and [w.id for w in delta.workers] == [W1]


def test_next_deadline_is_the_push_delay_after_a_change():
    b = cluster()
    b.on_tick(0.5)      # heartbeats out; now only liveness and heartbeat deadlines remain
    b.on_frames(0.7, W1, encode(Heartbeat(load=load(queue=1, slots=8, seq=2))))
    assert b.next_deadline() == pytest.approx(0.72)


def test_an_empty_broker_has_a_far_deadline():
    assert core(5.0).next_deadline() >= 5.0 + 3600


def test_next_deadline_moves_forward_after_a_tick_at_that_deadline():
    b = cluster()
    now = 0.0
    for _ in range(20):
        if not (b.table.workers or b.table.submitters):
            break  # everybody expired: nothing left to wait for
        deadline = b.next_deadline()
        assert deadline >= now
        now = deadline
        b.on_tick(now)
        assert b.next_deadline() > now, f"deadline stuck at {now}"
    assert not b.table.workers and b.next_deadline() == float("inf")


def test_next_deadline_moves_forward_after_ticks_just_past_each_deadline():
    b = cluster()
    now = 0.0
    while b.table.workers or b.table.submitters:
        deadline = b.next_deadline()
        assert deadline >= now
        now = deadline + 1e-6
        b.on_tick(now)
        assert b.next_deadline() > now
    # Nobody talked after t=0, so everybody expired once the liveness window had passed.
    assert now == pytest.approx(TIMING.expiry, abs=0.01)


# ---- hostile input -----------------------------------------------------------------------

GARBAGE = [
    [],
    [b"RAKE/2", msgpack.packb({"type": "HELLO", "version": "1"})],
    [SIGNATURE, b"\xc1"],
    [SIGNATURE, msgpack.packb(["HELLO"])],
    [SIGNATURE, msgpack.packb({"type": "JOB", "job": -1, "worker": W1, "command": "x"})],
    [SIGNATURE, msgpack.packb({"type": "HEARTBEAT", "load": {"queue": 0, "running": 0,
                                                             "slots": 1, "seq": math.nan}})],
    [SIGNATURE, msgpack.packb({"type": "JOB", "job": 1, "worker": W1, "command": "x",
                               "files": [{"path": "a", "mode": 0, "blob": 3}]})],
    [SIGNATURE, b"\x00" * (MAX_HEADER + 1)],
]


@pytest.mark.parametrize("frames", GARBAGE)
def test_garbage_frames_are_counted_and_answered_with_an_error(frames):
    b = cluster()
    sends = b.on_frames(1.0, SUB, frames)
    [(peer, msg, _)] = decoded(sends)
    assert peer == SUB and isinstance(msg, Error) and msg.code == "bad-message"
    assert b.stats["rejected"] == 1
    assert b.table.workers[W1].load.seq == 1


def test_garbage_from_an_unknown_peer_is_answered_without_registering_it():
    b = core()
    [(peer, msg, _)] = decoded(b.on_frames(0.0, "dead", [b"junk"]))
    assert peer == "dead" and msg.code == "bad-message"
    assert b.table.role("dead") is None and b.stats["rejected"] == 1


@settings(max_examples=1000, deadline=None, database=None)
@given(peer=st.sampled_from([W1, W2, SUB, "0bad"]),
       frames=st.lists(st.binary(max_size=40), max_size=5))
def test_random_frames_never_make_the_broker_raise(peer, frames):
    b = cluster()
    before = b.stats["rejected"]
    sends = b.on_frames(1.0, peer, frames)
    for s in sends:
        decode(s.frames)   # whatever it answers is itself a valid message
    assert b.stats["rejected"] == before + 1


def pad_to_limit(header, key):
    """Pack `header` with header[key] a string just long enough to make exactly MAX_HEADER bytes."""
    header[key] = ""
    length = MAX_HEADER - len(msgpack.packb(header))
    assert length > 0
    while len(msgpack.packb({**header, key: "x" * length})) > MAX_HEADER:
        length -= 1    # longer strings take a longer length prefix
    header[key] = "x" * length
    return msgpack.packb(header)


@pytest.mark.parametrize("kind", ["JOB", "RESULT"])
def test_a_valid_message_at_the_size_limit_is_never_fatal_to_the_broker(kind):
    b = cluster()
    if kind == "JOB":
        msg, peer = Job(job=1, worker=W1, command="x", client=""), SUB
    else:
        msg, peer = Result(job=1, client=SUB, status="exited", error="", worker=""), W1
    frames = encode(msg)
    header = msgpack.unpackb(frames[1])
    blobs = [b"data"]
    # Pad with many input files / skipped outputs so the header is exactly at the limit.
    def fill(key, item):   # as many items as leave less than one more to pad with
        header[key] = []
        room = MAX_HEADER - len(msgpack.packb(header)) - 100
        header[key] = [item(i) for i in range(room // len(msgpack.packb(item(0))))]
    if kind == "JOB":
        fill("files", lambda i: {"path": f"{i:05d}" + "p" * 3995, "mode": 0o644, "blob": 0})
        packed = pad_to_limit(header, "command")
    else:
        fill("skipped", lambda i: "s" * 3000)   # leaves less than the 4096 `error` may pad
        packed = pad_to_limit(header, "error")
    assert len(packed) == MAX_HEADER
    decode([SIGNATURE, packed, *blobs])    # a valid message
    sends = b.on_frames(1.0, peer, [SIGNATURE, packed, *blobs])
    for s in sends:
        decode(s.frames)


@pytest.mark.parametrize("flood", ["long routing id", "error", "result for a gone submitter"])
def test_a_flood_any_peer_can_send_is_counted_but_logged_only_at_powers_of_two(flood):
    lines = []
    b = BrokerCore(TIMING, 0.0, log=lines.append)
    ready(b, W1, 0.0)
    peer, frames = {
        "long routing id": ("4c" * 40, encode(Hello(version="0.1.0", name="sub"))),
        "error": (W1, encode(Error(code="bad-message", message="x"))),
        "result for a gone submitter": (W1, encode(Result(job=1, client=SUB, status="exited"))),
    }[flood]
    lines.clear()
    for i in range(1000):
        b.on_frames(0.001 * i, peer, frames)
    assert len(lines) == 10 + 6   # the first ten, then at 16, 32, ... 512 of 1000
    assert sum(b.stats[k] for k in ("rejected", "peer_errors", "results_dropped")) == 1000


def test_a_worker_that_says_ready_again_is_logged_as_joined_once():
    lines = []
    b = BrokerCore(TIMING, 0.0, log=lines.append)
    for t in (0.0, 0.1, 0.2):   # after a broker restart it answers each unknown-peer ERROR
        ready(b, W1, t, name="w1")
    assert sum(" joined" in line for line in lines) == 1
