"""The worker core cancelling jobs, draining, and forgetting acknowledged results."""

import pytest

from protocol import Ack, Bye, Cancel, Heartbeat, Result, encode
from worker.core import Kill
from worker.execute import Outcome

from tests.worker_core_helpers import SUB, SUB2, TIMING, deliver, sent, starts, worker


# ---- cancel ------------------------------------------------------------------------------

def test_cancelling_a_queued_job_answers_cancelled_and_never_starts_it():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    effects = w.on_frames(2.0, encode(Cancel(job=2, worker="57ff", client=SUB)))
    [res] = sent(effects)
    assert (res.job, res.status) == (2, "cancelled")
    assert not w.queue
    assert starts(w.on_finished(3.0, (SUB, 1), Outcome("exited"))) == []


def test_cancelling_a_running_job_with_kill_kills_it_and_reports_it_cancelled():
    w = worker(slots=1)
    deliver(w, 1)
    effects = w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=True, client=SUB)))
    assert effects == [Kill((SUB, 1))]
    [res] = sent(w.on_finished(2.5, (SUB, 1), Outcome("signalled", code=9)))
    assert res.status == "cancelled"


def test_cancelling_a_running_job_without_kill_lets_it_finish():
    w = worker(slots=1)
    deliver(w, 1)
    assert w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=False, client=SUB))) == []
    [res] = sent(w.on_finished(3.0, (SUB, 1), Outcome("exited", code=0)))
    assert res.status == "exited"


def test_a_cancel_from_another_client_does_not_touch_my_job():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert w.on_frames(2.0, encode(Cancel(job=2, worker="57ff", kill=True, client=SUB2))) == []
    assert w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=True, client=SUB2))) == []
    assert len(w.queue) == 1 and (SUB, 1) in w.running


def test_a_cancel_without_kill_for_a_job_never_received_is_answered_cancelled():
    # Its JOB was bounced or lost on the way; the submitter cannot tell and waits for an answer.
    w = worker(slots=1)
    [res] = sent(w.on_frames(2.0, encode(Cancel(job=7, worker="57ff", kill=False, client=SUB))))
    assert (res.job, res.client, res.status) == (7, SUB, "cancelled") and w.outbox.get((SUB, 7)) is not None
    assert sent(w.on_frames(2.0, encode(Cancel(job=8, worker="57ff", kill=True, client=SUB)))) == []
    [again] = sent(w.on_frames(3.0, encode(Cancel(job=7, worker="57ff", kill=False, client=SUB))))
    assert (again.job, again.status) == (7, "cancelled")   # asked again: the kept RESULT, again


def test_a_killing_cancel_for_an_unknown_job_is_ignored():
    assert worker().on_frames(1.0, encode(Cancel(job=5, worker="57ff", kill=True, client=SUB))) == []


# ---- drain -------------------------------------------------------------------------------

def test_drain_answers_queued_jobs_with_an_error_and_tells_the_broker_at_once():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    deliver(w, 3)
    msgs = sent(w.drain(5.0))
    results = [m for m in msgs if isinstance(m, Result)]
    assert sorted(r.job for r in results) == [2, 3]
    assert all(r.status == "cancelled" and "not started: worker" in r.error and "draining" in r.error for r in results)
    # The broker hears right away that this worker takes nothing more: a BYE, or a load
    # report that says it is draining.
    announce = [m for m in msgs if not isinstance(m, Result)]
    assert announce
    assert all(isinstance(m, Bye) or (isinstance(m, Heartbeat) and getattr(m.load, "draining", False))
               for m in announce)
    assert (SUB, 1) in w.running and not w.queue and not w.settled(1.0)


def test_a_drained_worker_says_bye_when_it_leaves():
    w = worker(slots=1)
    deliver(w, 1)
    msgs = sent(w.drain(5.0))
    w.on_finished(6.0, (SUB, 1), Outcome("exited"))
    if not any(isinstance(m, Bye) for m in msgs):
        msgs = sent(w.leave(7.0))
    assert any(isinstance(m, Bye) for m in msgs)


def test_a_draining_worker_finishes_running_jobs_and_refuses_new_ones():
    w = worker(slots=1)
    deliver(w, 1)
    w.drain(1.5)
    [refused] = sent(deliver(w, 9, now=2.0))
    assert (refused.job, refused.status) == (9, "cancelled")
    effects = w.on_finished(2.5, (SUB, 1), Outcome("exited"))
    assert [m.status for m in sent(effects)] == ["exited"] and starts(effects) == []
    assert not w.settled(2.5)   # its result's ACK is still to come


@pytest.mark.parametrize("acked", [True, False])
def test_a_draining_worker_waits_for_its_results_acks_but_not_past_a_window(acked):
    w = worker(slots=1)
    deliver(w, 1)
    w.drain(1.5)
    w.on_finished(2.5, (SUB, 1), Outcome("exited"))
    if acked:
        w.on_frames(2.6, encode(Ack(worker="57ff", jobs=(1,), client=SUB)))
        assert w.settled(2.6)
    else:
        assert not w.settled(2.5 + TIMING.expiry - 0.01) and w.settled(2.5 + TIMING.expiry)


def test_a_job_carrying_acks_makes_the_worker_forget_those_kept_results_only():
    w = worker(slots=2)
    deliver(w, 1)
    deliver(w, 2)
    w.on_finished(2.0, (SUB, 1), Outcome("exited"))
    w.on_finished(2.0, (SUB, 2), Outcome("exited"))
    assert w.outbox.get((SUB, 1)) is not None and w.outbox.get((SUB, 2)) is not None
    assert starts(deliver(w, 3, now=3.0, acks=(1,))) == [(SUB, 3)]
    assert w.outbox.get((SUB, 1)) is None and w.outbox.get((SUB, 2)) is not None


def test_acks_on_a_duplicate_job_still_count():
    w = worker(slots=2)
    deliver(w, 1)
    deliver(w, 2)
    w.on_finished(2.0, (SUB, 1), Outcome("exited"))
    assert deliver(w, 2, now=3.0, acks=(1,)) == []   # job 2 is still running: a duplicate
    assert w.outbox.get((SUB, 1)) is None


def test_a_job_resent_while_it_is_killed_for_its_dropped_submitter_runs_again_and_answers():
    # The broker dropped the submitter (silent too long) and the worker kills its jobs; the
    # submitter comes back and resends job 1 before the kill has ended. Ignoring it as a
    # duplicate would leave the submitter waiting forever: the killed run answers nobody.
    w = worker(slots=2)
    deliver(w, 1)
    [kill] = w.on_frames(2.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    assert isinstance(kill, Kill) and kill.key == (SUB, 1)
    assert deliver(w, 1, now=3.0) == []
    w.on_exited(1.0, (SUB, 1))
    effects = w.on_finished(3.5, (SUB, 1), Outcome("signalled", code=9))
    assert [m for m in sent(effects) if not isinstance(m, Heartbeat)] == [] and starts(effects) == [(SUB, 1)]
    [result] = sent(w.on_finished(4.0, (SUB, 1), Outcome("exited")))
    assert (result.job, result.status) == (1, "exited")


@pytest.mark.parametrize("then", ["cancel kill", "cancel everything"])
def test_a_job_resent_while_it_is_killed_and_then_cancelled_does_not_run_again(then):
    # As above, but the submitter then cancels it (Ctrl-C), or leaves for good: the copy
    # waiting for the kill to end must go too, or the action runs after all.
    w = worker(slots=2)
    deliver(w, 1)
    w.on_frames(2.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    assert deliver(w, 1, now=3.0) == []
    cancel = (Cancel(job=1, worker="57ff", kill=True, client=SUB) if then == "cancel kill"
              else Cancel(job=0, worker="57ff", client=SUB, everything=True))
    w.on_frames(3.1, encode(cancel))
    w.on_exited(3.2, (SUB, 1))
    effects = w.on_finished(3.5, (SUB, 1), Outcome("signalled", code=9))
    assert starts(effects) == [] and not w.running and not w.rerun
    if then == "cancel kill":
        assert [(m.job, m.status) for m in sent(effects) if isinstance(m, Result)] == [(1, "cancelled")]


def test_a_finished_job_resent_by_a_submitter_the_broker_had_dropped_is_answered_not_run_again():
    # A network blip at the broker, longer than the liveness window: the broker drops the
    # submitter and, when this worker re-registers, tells it to cancel that submitter's
    # everything. The submitter was alive all along: it says HELLO again and resends its
    # outstanding job with the same id. The job had finished: answer from the kept result.
    w = worker(slots=2)
    assert starts(deliver(w, 1)) == [(SUB, 1)]
    w.on_exited(2.0, (SUB, 1))
    [first] = [m for m in sent(w.on_finished(2.0, (SUB, 1), Outcome("exited"))) if isinstance(m, Result)]
    w.on_frames(5.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    effects = deliver(w, 1, now=6.0)
    assert starts(effects) == []
    [again] = [m for m in sent(effects) if isinstance(m, Result)]
    assert (again.job, again.status) == (first.job, first.status)
    w.on_frames(6.5, encode(Ack(worker="57ff", client=SUB, jobs=[1])))
    assert w.outbox.get((SUB, 1)) is None


def test_results_parked_for_a_dropped_submitter_that_never_comes_back_are_let_go():
    # A run interrupted with Ctrl-C (its killed actions' results, with their output, reach
    # the broker after its BYE), or a submitter killed with results in flight: the broker
    # says CANCEL everything. Parked results wait for a submitter that may come back, but
    # not for ever: held until the outbox's byte cap, they kept a worker's memory up for good.
    w = worker(slots=2)
    deliver(w, 1)
    w.on_exited(2.0, (SUB, 1))
    w.on_finished(2.0, (SUB, 1), Outcome("exited", stdout=b"x" * 100_000))
    w.on_frames(5.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    assert w.outbox.get((SUB, 1)) is not None and w.outbox.bytes > 0
    for windows in range(1, 22):   # the broker beats on
        w.on_frames(5.0 + windows * TIMING.expiry, encode(Heartbeat()))
        w.on_tick(5.0 + windows * TIMING.expiry)
        if windows == 10:   # still there for a submitter that comes back soon
            assert w.outbox.get((SUB, 1)) is not None
    assert w.outbox.get((SUB, 1)) is None and w.outbox.bytes == 0
