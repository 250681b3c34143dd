"""An actionset run's late, duplicate and error results, and its retries."""

import dataclasses

import pytest

from protocol import Error, Load, Workers
from submitter.core import EXIT_FAILED, EXIT_OK, Deliver, Failed, Note, SendJob

from tests.submitter_core_helpers import gone, info, make_run, of, remote, result, three_workers


def test_a_late_result_for_a_given_up_job_is_ignored():
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    [second] = of(SendJob, run.on_workers(1.0, gone(first.worker)))
    assert run.on_result(2.0, result(first, code=1), []) == []
    assert run.status == EXIT_OK and second.job in run.remote
    effects = run.on_result(3.0, result(second), [])
    assert of(Deliver, effects) and run.finished and run.status == EXIT_OK


def test_a_duplicate_result_is_delivered_once():
    run = make_run(remote(1))
    [send] = of(SendJob, run.start(0.0))
    assert of(Deliver, run.on_result(1.0, result(send), []))
    assert run.on_result(1.0, result(send), []) == []


def test_a_result_sent_by_another_peer_than_the_jobs_worker_is_dropped():
    run = make_run(remote(1))
    [send] = of(SendJob, run.start(0.0))
    forged = dataclasses.replace(result(send, stdout=0), worker="f0f0")
    assert run.on_result(1.0, forged, [b"forged"]) == [] and send.job in run.remote
    assert of(Deliver, run.on_result(2.0, result(send), []))


def test_an_error_result_from_a_worker_is_retried_as_a_new_attempt():
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    effects = run.on_result(1.0, result(first, status="error", error="draining"), [])
    [again] = of(SendJob, effects)
    assert again.attempt == 2 and run.status == EXIT_OK


def test_a_retried_action_avoids_the_worker_that_already_failed_it():
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    # The failing worker is idle again afterwards, so only `avoid` keeps the retry off it.
    [again] = of(SendJob, run.on_result(1.0, result(first, status="error", error="disk full"), []))
    assert again.worker != first.worker


def test_a_retry_waits_a_window_for_an_untried_worker_then_takes_the_tried_one_again():
    # w2 is full (another submitter's jobs); w1 failed the job once but is free again.
    run = make_run(remote(1), workers=(info("id-aa", "w1"), info("id-bb", "w2", queue=5)), window=3.0)
    [first] = of(SendJob, run.start(0.0))
    assert first.worker == "id-aa"
    assert of(SendJob, run.on_result(1.0, result(first, status="error", error="cut off"), [])) == []
    assert run.next_deadline() == pytest.approx(4.001)
    assert of(SendJob, run.on_tick(3.9)) == []
    [again] = of(SendJob, run.on_tick(4.1))
    assert again.worker == "id-aa" and again.attempt == 2 and not run.waits.since


def test_a_retry_that_waited_its_window_on_a_full_cluster_leaves_no_deadline_in_the_past():
    # Both workers full: nothing can take the retry, so the loop must sleep, not spin.
    run = make_run(remote(2), workers=(info("id-aa", "w1", queue=1), info("id-bb", "w2", queue=1)), window=3.0)
    first, second = of(SendJob, run.start(0.0))
    full = Load(queue=2, running=1, slots=1, seq=5)   # w1 has taken other submitters' jobs
    run.on_result(1.0, result(first, status="error", error="cut off", load=full), [])
    assert of(SendJob, run.on_tick(5.0)) == [] and 0 in run.waits.relaxed
    deadline = run.next_deadline()
    assert deadline is None or deadline > 5.0
    run.on_result(6.0, result(second, status="exited", code=1), [])   # a failure halts the run
    run.on_tick(6.1)
    assert not run.waits.since and not run.waits.relaxed and run.next_deadline() is None


def test_an_action_whose_outputs_are_lost_after_the_run_halted_is_reported_not_dropped():
    run = make_run(remote(2))
    first, second = of(SendJob, run.start(0.0))
    run.on_result(1.0, result(first, status="exited", code=1), [])    # halts the actionset
    run.on_result(1.1, result(second), [])                             # delivered: outputs on their way
    [failed] = of(Failed, run.redo(2.0, second.index, second.worker))  # ... and lost with its worker
    assert failed.index == second.index and "output lost" in failed.message
    assert run.status == EXIT_FAILED


def test_an_unknown_worker_error_waits_a_window_for_the_worker_before_moving_the_job():
    run = make_run(remote(1), window=3.0)
    [first] = of(SendJob, run.start(0.0))
    effects = run.on_error(1.0, Error(code="unknown-worker", message="no worker", job=first.job))
    assert of(SendJob, effects) == [] and first.worker not in run.view.rows
    [again] = of(SendJob, run.on_tick(4.1))
    assert again.worker != first.worker and again.attempt == 2
    assert run.status == EXIT_OK


def test_an_error_without_a_job_is_only_a_note():
    run = make_run(remote(1))
    run.start(0.0)
    effects = run.on_error(1.0, Error(code="bad-message", message="huh"))
    assert effects == [Note("broker: bad-message: huh")]
    assert len(run.remote) == 1


def test_an_error_about_a_job_no_longer_ours_is_dropped_quietly():
    run = make_run(remote(1))
    run.start(0.0)
    assert run.on_error(1.0, Error(code="unknown-worker", message="no worker 573aa28f", job=999)) == []
    assert len(run.remote) == 1


def test_an_unknown_worker_error_after_a_failure_still_lets_the_run_finish():
    run = make_run(remote(2))
    a, b = of(SendJob, run.start(0.0))
    run.on_result(1.0, result(a, code=1), [])          # halts; b is being cancelled
    run.on_error(1.5, Error(code="unknown-worker", message="gone", job=b.job))
    run.on_tick(1.5 + 3.0 + 0.1)
    assert run.finished
    assert run.status == EXIT_FAILED


def draining_load(seq):
    return Load(queue=0, running=0, slots=1, seq=seq, draining=True)


def test_a_job_a_draining_worker_hands_back_unstarted_goes_elsewhere_without_using_an_attempt():
    # Every worker in turn drains (a rolling restart): three hand-backs would once have been
    # "gave up after 3 attempts" for an action that never ran.
    run = make_run(remote(1), workers=three_workers() + (info("id-dd", "w4"),))
    [send] = of(SendJob, run.start(0.0))
    places = [send.worker]
    for n in range(3):
        handed_back = result(send, status="cancelled", error="not started: worker w is draining",
                             load=draining_load(10 + n))
        effects = run.on_result(1.0 + n, handed_back, [])
        assert not of(Failed, effects) and any("is sent again, no attempt used" in e.text for e in of(Note, effects))
        [send] = of(SendJob, effects)
        assert send.attempt == 1
        places.append(send.worker)
    assert len(set(places)) == 4   # never back to one that is draining
    assert of(Deliver, run.on_result(9.0, result(send), [])) and run.status == EXIT_OK


def test_a_worker_that_keeps_handing_a_job_back_uses_up_its_attempts_in_the_end():
    run = make_run(remote(1), workers=(info("id-aa", "w1"),))
    [send] = of(SendJob, run.start(0.0))
    for n in range(20):
        effects = run.on_result(1.0 + n, result(send, status="cancelled", error="draining",
                                                load=Load(queue=0, running=0, slots=1, seq=10 + n, draining=True)), [])
        if of(Failed, effects):
            break
        run.view.apply(Workers(full=True, workers=(info("id-aa", "w1", seq=100 + n),)))   # "not draining" again
        [send] = of(SendJob, effects) or of(SendJob, run.on_tick(100.0 + n))
    assert of(Failed, effects) and run.status == EXIT_FAILED


def test_giving_up_on_the_only_worker_names_it_once_with_a_count():
    run = make_run(remote(1), workers=(info("id-aa", "embedded"),), window=0.5)
    [send] = of(SendJob, run.start(0.0))
    for n in range(3):
        effects = run.on_result(1.0 + n, result(send, status="error", error="disk full"), [])
        sends = of(SendJob, effects) or of(SendJob, run.on_tick(1.9 + n))
        if not sends:
            break
        [send] = sends
    [failed] = of(Failed, effects)
    assert "gave up after 3 attempts on embedded (3 times): " in failed.message
