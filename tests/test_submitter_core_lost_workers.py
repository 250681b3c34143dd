"""An actionset run whose workers vanish, or whose broker restarts: actions moved or failed."""

import pytest

from protocol import Error, Workers
from submitter.bounces import BUSY_RETRY
from submitter.core import EXIT_FAILED, EXIT_OK, Deliver, Failed, Note, Withdrawn, SendCancel, SendJob

from tests.submitter_core_helpers import actionset, gone, info, make_run, of, remote, result, three_workers


# ---- lost workers and retries ------------------------------------------------------------

def test_a_vanished_worker_has_its_action_sent_elsewhere_as_attempt_2():
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    effects = run.on_workers(1.0, gone(first.worker))
    [again] = of(SendJob, effects)
    assert again.index == first.index and again.attempt == 2
    assert again.worker != first.worker and again.job != first.job
    assert any("retrying" in n.text for n in of(Note, effects))
    assert run.status == EXIT_OK


def test_after_a_failure_an_action_whose_worker_is_lost_fails_saying_so_not_silently():
    run = make_run(remote(2), workers=three_workers(slots=1), depth=1.0)
    failing, running = of(SendJob, run.start(0.0))
    run.on_result(1.0, result(failing, code=1), [])
    effects = run.on_workers(2.0, gone(running.worker))
    [failed] = of(Failed, effects)
    assert failed.index == running.index and "was lost (not run again: an earlier action failed)" in failed.message
    assert not of(SendJob, effects) and run.finished and run.status == EXIT_FAILED


def test_after_a_failure_an_action_waiting_to_be_retried_fails_saying_so_not_silently():
    run = make_run(actionset("\tremote-a\n\tfalse\n"), workers=(info("id-aa", "w1"),))
    [send] = of(SendJob, run.start(0.0))
    effects = run.on_workers(1.0, gone(send.worker))   # lost: waits for a worker to retry on
    assert any("retrying" in n.text for n in of(Note, effects)) and run.pending == [0]
    [failed] = of(Failed, run.on_local_done(2.0, 1, False))
    assert failed.index == 0 and "not tried again: an earlier action failed" in failed.message
    assert run.finished and run.status == EXIT_FAILED


def test_a_resent_job_bounced_again_after_a_failure_is_asked_for_by_cancel_and_awaited_not_withdrawn():
    """Bounced (worker-busy), sent again, then bounced by its worker's reconnect after a
    failure halted the set: its worker may be running it (the broker cannot tell), so it is
    not withdrawn, nor sent again (it must not start now): a CANCEL alone asks, once
    BUSY_RETRY has passed, and the RESULT is delivered, not dropped as late."""
    run = make_run(remote(2), workers=(info("id-aa", "w1", slots=8),))
    first, second = of(SendJob, run.start(0.0))
    run.on_error(0.1, Error(code="worker-busy", message="full", job=first.job))
    assert [s.job for s in of(SendJob, run.on_tick(1.0))] == [first.job]   # resent
    run.on_result(2.0, result(second, code=1), [])                          # halts the set
    assert run.on_error(3.0, Error(code="worker-busy", message="reconnected", job=first.job)) == []
    effects = run.on_tick(3.0 + BUSY_RETRY)
    assert of(SendJob, effects) == [] and not of(Withdrawn, effects)
    assert of(SendCancel, effects) == [SendCancel(first.worker, first.job, kill=False)]
    assert of(SendCancel, run.on_tick(3.5)) == []   # asked again only a window later: that CANCEL
    [again] = of(SendCancel, run.on_tick(3.3 + BUSY_RETRY + 3.0))   # may be lost too (a link drop)
    assert again == SendCancel(first.worker, first.job, kill=False)
    assert of(Deliver, run.on_result(7.0, result(first), [])) and run.finished
    assert of(SendCancel, run.on_tick(20.0)) == []


def test_a_worker_missing_from_a_full_table_is_given_a_liveness_window_then_lost():
    run = make_run(remote(1), window=3.0)
    [first] = of(SendJob, run.start(0.0))
    others = tuple(w for w in three_workers() if w.id != first.worker)
    assert of(SendJob, run.on_workers(1.0, Workers(full=True, workers=others))) == []
    assert run.next_deadline() == pytest.approx(4.0, abs=0.01)
    assert of(SendJob, run.on_tick(3.9)) == []
    [again] = of(SendJob, run.on_tick(4.01))
    assert again.attempt == 2 and again.worker != first.worker


def test_after_a_broker_restart_jobs_are_resent_with_the_same_id_to_workers_that_return():
    run = make_run(remote(2), window=3.0)
    a, b = of(SendJob, run.start(0.0))
    run.on_broker_reset(1.0)
    back = tuple(w for w in three_workers() if w.id == a.worker)
    effects = run.on_workers(1.2, Workers(full=True, workers=back))
    assert of(SendJob, effects) == [SendJob(a.index, a.worker, a.job, a.attempt)]
    assert of(SendJob, run.on_tick(4.1)) == []    # the window starts at the new table (1.2)
    [moved] = of(SendJob, run.on_tick(4.3))       # b's worker never came back
    assert moved.index == b.index and moved.attempt == 2 and moved.worker == a.worker


def test_after_a_broker_restart_a_job_being_cancelled_is_asked_for_not_sent_again():
    """Halted before the restart: its JOB may never have reached the worker (whose answer
    is then all there is to wait for), and it must not start now."""
    run = make_run(actionset("\tremote-a\n\tfalse\n"), workers=(info("id-aa", "w1", slots=8),))
    [send] = of(SendJob, run.start(0.0))
    run.on_local_done(0.5, 1, False)   # halts: its CANCEL (no kill) goes out, and may be lost
    run.on_broker_reset(1.0)
    assert of(SendJob, run.on_workers(1.2, Workers(full=True, workers=(info("id-aa", "w1", slots=8),)))) == []
    effects = run.on_tick(1.3)
    assert of(SendJob, effects) == [] and of(SendCancel, effects) == [SendCancel(send.worker, send.job, kill=False)]
    assert run.on_result(2.0, result(send, status="cancelled"), []) == [Withdrawn(send.index)] and run.finished


def test_after_three_lost_attempts_the_action_fails_naming_every_worker_tried():
    run = make_run(remote(1))
    [send] = of(SendJob, run.start(0.0))
    tried = []
    for attempt in (1, 2, 3):
        assert send.attempt == attempt
        tried.append(run.view.name(send.worker))
        effects = run.on_workers(float(attempt), gone(send.worker))
        if attempt < 3:
            [send] = of(SendJob, effects)
    [failed] = of(Failed, effects)
    assert failed.index == 0
    assert "3 attempts" in failed.message
    for name in tried:
        assert name in failed.message
    assert sorted(tried) == ["w1", "w2", "w3"]
    assert run.status == EXIT_FAILED and run.finished


def test_a_gone_pushed_before_the_broker_went_silent_waits_for_its_new_table():
    # The broker's link was cut: it dropped its workers (pushing `gone`, which sat in the
    # cut link), then us. When the link is back, that stale `gone` arrives first; the workers
    # rejoin at once. Their finished jobs must be asked for again, not run elsewhere.
    run = make_run(remote(2), window=3.0)
    a, b = of(SendJob, run.start(0.0))
    run.on_broker_reset(4.0)
    effects = run.on_workers(6.0, gone(a.worker, b.worker))
    assert of(SendJob, effects) == [] and not any("retrying" in n.text for n in of(Note, effects))
    effects = run.on_workers(6.2, Workers(full=True, workers=three_workers()))
    assert sorted(of(SendJob, effects)) == sorted([a, b])   # same ids, same workers


def test_a_worker_that_reconnects_after_a_broker_stall_costs_its_actions_no_attempt():
    """A broker SIGSTOPped past the window, one worker killed meanwhile.
    The two live workers reconnected on new connections; the broker pushed their old ids as
    gone, and each counted as a lost attempt, so an action moved from the dead worker to a
    stalled one and on to the other failed "gave up after 3 attempts" with only one dead."""
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    [second] = of(SendJob, run.on_workers(1.0, gone(first.worker)))   # really lost: attempt 1 used
    name = run.view.names[second.worker]
    back = Workers(full=False, workers=(info("id-new1", name),), gone=(second.worker,))
    [third] = of(SendJob, run.on_workers(2.0, back))   # reconnected: sent again, attempt 2 still
    assert third.attempt == 2
    name = run.view.names[third.worker]
    back = Workers(full=False, workers=(info("id-new2", name),), gone=(third.worker,))
    [fourth] = of(SendJob, run.on_workers(3.0, back))
    assert fourth.attempt == 2 and run.status == EXIT_OK and not of(Failed, run.on_tick(3.0))
