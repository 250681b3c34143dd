"""The broker core registering workers and submitters and sending them the table."""

import pytest

from protocol import Error, Heartbeat, Hello, Job, Ready, Workers, encode

from tests.broker_core_helpers import (
    SUB, SUB2, TIMING, W1, W2, cluster, core, decoded, hello, load, messages_to, ready,
)


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
