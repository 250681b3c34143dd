"""A submitter that keeps heartbeating but stops reading must not make the broker hold its
results without bound (broker/backlog.py): the socket queue to it counts messages, not
bytes, and each unacknowledged result comes again from its worker every window."""

from broker.backlog import HEADER, MAX_BYTES
from protocol import Ack, Bye, Job, Result, encode
from tests.broker_core_helpers import SUB, SUB2, W1, cluster, hello, messages_to

BIG = bytes(32 << 20)   # one RESULT's stdout and stderr at the worker's default --max-output
FITS = MAX_BYTES // (len(BIG) + HEADER)   # results forwarded before one is held


def result(b, job, now=1.0, client=SUB):
    res = Result(job=job, client=client, status="exited", stdout=0)
    return messages_to(b.on_frames(now, W1, encode(res, [BIG])), client, Result)


def test_results_a_submitter_never_acknowledges_are_held_back_past_the_budget():
    b = cluster()
    assert all(result(b, job) for job in range(1, FITS + 1))
    assert result(b, FITS + 1) == []
    assert b.stats["results_held"] == 1


def test_a_worker_resending_an_unacknowledged_result_does_not_grow_the_brokers_queue_without_bound():
    b = cluster()
    forwarded = sum(len(result(b, 1, now=float(window))) for window in range(1, 4 * FITS))
    assert forwarded == FITS


def test_an_acknowledged_result_frees_its_room_by_ack_or_riding_on_a_job():
    b = cluster()
    for job in range(1, FITS + 1):
        result(b, job)
    b.on_frames(2.0, SUB, encode(Ack(worker=W1, jobs=(1,))))
    assert result(b, FITS + 1)
    b.on_frames(2.0, SUB, encode(Job(job=99, worker=W1, command="true", acks=(2,))))
    assert result(b, FITS + 2)


def test_a_submitter_that_reads_and_acknowledges_is_never_held_back():
    b = cluster()
    for job in range(1, 4 * FITS):
        assert result(b, job)
        b.on_frames(1.0, SUB, encode(Ack(worker=W1, jobs=(job,))))
    assert b.stats["results_held"] == 0


def test_one_stuck_submitter_leaves_others_their_own_budget_and_is_forgotten_when_it_goes():
    b = cluster()
    hello(b, SUB2, 0.5)
    for job in range(1, FITS + 2):
        result(b, job)
    assert result(b, 1, client=SUB2)
    b.on_frames(2.0, SUB, encode(Bye(reason="done")))
    assert SUB not in b.backlog.owed


def test_results_of_a_worker_that_left_are_no_longer_counted_against_their_submitter():
    # That worker never sends them again, so nothing would ever acknowledge them: counted for
    # ever, they would hold back every later result to that submitter, which then waited for ever.
    b = cluster()
    for job in range(1, FITS + 2):
        result(b, job)
    b.on_frames(2.0, W1, encode(Bye(reason="draining done")))
    assert SUB not in b.backlog.owed and SUB not in b.backlog.bytes
