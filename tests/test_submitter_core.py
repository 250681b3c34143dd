"""Tests of running one actionset (submitter/core.py, SPEC sections 3 and 6), on a fake clock."""

import dataclasses
import itertools

import pytest

from protocol import Error, Load, Result, WorkerInfo, Workers
from submitter.bounces import BUSY_RETRY
from submitter.core import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NO_WORKER, EXIT_OK, ActionSetRun, Deliver, Failed, Note, Withdrawn,
    RunLocal, RunOptions, SendCancel, SendJob,
)
from submitter.rakefile import parse_rakefile
from submitter.view import WorkerView

ME = "6d65"


def info(wid, name, slots=1, queue=0, seq=1):
    return WorkerInfo(id=wid, name=name, host="h", slots=slots, queue=queue, running=0, seq=seq)


def three_workers(slots=1):
    """Ids deliberately differ from names, so code that mixes the two up is caught."""
    return (info("id-aa", "w1", slots), info("id-bb", "w2", slots), info("id-cc", "w3", slots))


def actionset(text):
    return parse_rakefile("actionset1:\n" + text).actionsets[0]


def remote(n):
    return actionset("".join(f"\tremote-step {i}\n" for i in range(n)))


def make_run(aset, workers=three_workers(), **options):
    view = WorkerView(ME)
    if workers is not None:
        view.apply(Workers(full=True, workers=tuple(workers)))
    options.setdefault("first_depth", options.get("depth", 2.0))   # steady state; see test_placement
    return ActionSetRun(aset, view, itertools.count(1), RunOptions(**options), 0.0)


def of(kind, effects):
    return [e for e in effects if isinstance(e, kind)]


def result(send, status="exited", code=0, **kw):
    """The RESULT of `send` (a SendJob), as the broker passes it on: from the worker it went to."""
    return Result(job=send.job, client=ME, status=status, code=code, worker=send.worker, **kw)


def gone(*ids):
    return Workers(full=False, workers=(), gone=ids)


# ---- local actions -----------------------------------------------------------------------

def test_local_actions_are_run_locally_without_any_worker():
    aset = actionset("\techo one\n\techo two\n")
    run = ActionSetRun(aset, None, itertools.count(1), RunOptions(), 0.0)
    effects = run.start(0.0)
    assert effects == [RunLocal(0), RunLocal(1)]
    run.on_local_done(1.0, 0, True)
    run.on_local_done(1.0, 1, True)
    assert run.finished and run.status == EXIT_OK


def test_local_and_remote_actions_of_one_actionset_start_together():
    run = make_run(actionset("\techo local\n\tremote-cc -c x.c\n"))
    effects = run.start(0.0)
    assert of(RunLocal, effects) == [RunLocal(0)]
    assert [(s.index, s.attempt) for s in of(SendJob, effects)] == [(1, 1)]


def test_a_failed_local_action_halts_the_actionset():
    run = make_run(actionset("\tfalse\n\tremote-a\n"), jobs=1)
    run.start(0.0)
    effects = run.on_local_done(1.0, 0, False)
    assert of(SendJob, effects) == []
    assert run.status == EXIT_FAILED and run.finished


# ---- success and failure -----------------------------------------------------------------

def test_a_successful_remote_result_is_delivered_with_the_worker_name():
    run = make_run(remote(1))
    [send] = of(SendJob, run.start(0.0))
    res = result(send, stdout=0, stderr=1)
    effects = run.on_result(1.0, res, [b"out", b"err"])
    assert effects == [Deliver(0, res, [b"out", b"err"], run.view.name(send.worker))]
    assert run.view.name(send.worker) in ("w1", "w2", "w3")
    assert run.finished and run.status == EXIT_OK


def test_a_failed_action_halts_cancels_the_others_without_killing_and_exits_1():
    run = make_run(remote(5), workers=three_workers(slots=1), depth=1.0)
    sends = of(SendJob, run.start(0.0))
    assert len(sends) == 3 and len(run.pending) == 2
    failing = sends[0]
    effects = run.on_result(1.0, result(failing, code=1), [])
    assert of(SendJob, effects) == []
    assert sorted(of(SendCancel, effects)) == sorted(
        SendCancel(s.worker, s.job, kill=False) for s in sends[1:])
    assert isinstance(effects[0], Deliver)
    assert run.status == EXIT_FAILED and not run.pending


def test_after_a_failure_running_actions_finish_and_no_new_one_starts():
    run = make_run(remote(4), workers=three_workers(slots=1), depth=1.0)
    sends = of(SendJob, run.start(0.0))
    run.on_result(1.0, result(sends[0], code=2), [])
    # The others were running and finish anyway: their output is still delivered.
    effects = run.on_result(2.0, result(sends[1]), [])
    assert of(Deliver, effects) and not of(SendJob, effects)
    effects = run.on_result(2.0, result(sends[2], status="cancelled"), [])
    assert effects == [Withdrawn(sends[2].index)]   # taken back before it ran: counted as not run
    assert run.finished and run.status == EXIT_FAILED


def test_under_j_a_result_with_outputs_holds_its_slot_until_they_are_delivered():
    """Its outputs may be refused (a failure), big ones only once fetched: the next action
    must not have started by then."""
    from protocol import FileRef
    for refused in (True, False):
        run = make_run(remote(2), workers=(info("id-aa", "w1", slots=1),), jobs=1)
        [first] = of(SendJob, run.start(0.0))
        made = result(first, outputs=(FileRef(path="out", mode=0o644, digest="ab" * 32, size=2 << 20),))
        assert of(SendJob, run.on_result(1.0, made, [])) == []
        assert of(SendJob, run.on_tick(1.1)) == []   # still fetching its output
        if refused:   # as the session does when the Deliver is refused
            assert of(SendJob, run.fail(2.0, first.index)) == [] and run.status == EXIT_FAILED
        else:
            [second] = of(SendJob, run.delivered(2.0, first.index))
            assert second.index == 1


def test_a_signalled_or_timed_out_action_counts_as_failed():
    for status, code in (("signalled", 9), ("timeout", 9)):
        run = make_run(remote(1))
        [send] = of(SendJob, run.start(0.0))
        effects = run.on_result(1.0, result(send, status=status, code=code), [])
        assert of(Deliver, effects)
        assert run.status == EXIT_FAILED


def test_keep_going_starts_the_remaining_actions_after_a_failure():
    run = make_run(remote(4), workers=three_workers(slots=1), depth=1.0, keep_going=True)
    sends = of(SendJob, run.start(0.0))
    effects = run.on_result(1.0, result(sends[0], code=1), [])
    assert of(SendCancel, effects) == []
    [next_send] = of(SendJob, effects)
    assert next_send.index == 3
    for s in (*sends[1:], next_send):
        run.on_result(2.0, result(s), [])
    assert run.finished and run.status == EXIT_FAILED


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


# ---- no worker ---------------------------------------------------------------------------

def test_an_empty_worker_table_for_longer_than_worker_wait_gives_status_69():
    run = make_run(remote(2), workers=None, worker_wait=10.0)
    assert run.start(100.0) == []
    assert run.next_deadline() == 110.0
    assert run.on_tick(109.9) == []
    effects = run.on_tick(110.0)
    assert sorted(f.index for f in of(Failed, effects)) == [0, 1]
    assert "no worker" in effects[0].message
    assert run.status == EXIT_NO_WORKER and run.finished


def test_a_worker_appearing_in_time_resets_the_no_worker_clock():
    run = make_run(remote(1), workers=None, worker_wait=10.0)
    run.start(0.0)
    effects = run.on_workers(9.0, Workers(full=True, workers=(info("id-aa", "w1"),)))
    assert len(of(SendJob, effects)) == 1
    assert run.next_deadline() is None
    assert run.on_tick(50.0) == [] and run.status == EXIT_OK


def test_losing_every_worker_starts_the_no_worker_clock():
    run = make_run(remote(1), workers=(info("id-aa", "w1"),), worker_wait=5.0)
    [send] = of(SendJob, run.start(0.0))
    run.on_workers(1.0, gone(send.worker))
    assert run.next_deadline() == 1.0 + 5.0
    run.on_tick(6.0)
    assert run.status == EXIT_NO_WORKER


def test_busy_workers_are_not_the_same_as_no_workers():
    run = make_run(remote(3), workers=(info("id-aa", "w1"),), worker_wait=5.0, depth=1.0)
    run.start(0.0)
    assert len(run.pending) == 2
    assert run.next_deadline() is None
    assert run.on_tick(100.0) == [] and run.status == EXIT_OK


# ---- -j and interrupts -------------------------------------------------------------------

def test_jobs_option_caps_concurrent_actions():
    run = make_run(actionset("\techo a\n\tremote-b\n\techo c\n\tremote-d\n\techo e\n"), jobs=2)
    started = run.start(0.0)
    assert len(started) == 2
    assert len(run.local_running) + len(run.remote) == 2
    done = started[0]
    if isinstance(done, RunLocal):
        more = run.on_local_done(1.0, done.index, True)
    else:
        more = run.on_result(1.0, result(done), [])
    assert len(of(RunLocal, more) + of(SendJob, more)) == 1
    assert len(run.local_running) + len(run.remote) == 2


def test_jobs_option_caps_remote_actions_even_with_idle_slots():
    run = make_run(remote(10), workers=(info("id-aa", "w1", slots=64),), jobs=3)
    assert len(of(SendJob, run.start(0.0))) == 3


def test_interrupt_kills_every_remote_job_and_exits_130():
    run = make_run(remote(4), workers=three_workers(slots=1), depth=1.0)
    sends = of(SendJob, run.start(0.0))
    effects = run.interrupt(1.0)
    assert sorted(effects) == sorted(SendCancel(s.worker, s.job, kill=True) for s in sends)
    assert run.status == EXIT_INTERRUPTED
    assert run.finished
    # Whatever arrives afterwards starts nothing.
    assert run.on_tick(2.0) == []
    assert run.on_result(2.0, result(sends[0]), []) == []


def test_a_job_dropped_at_a_full_worker_queue_is_sent_again_as_the_same_job_shortly():
    """The same id: the broker cannot tell a resend from a first send, and a worker holding
    the job already (a resend after a broker restart) ignores the copy rather than run it."""
    run = make_run(remote(1))
    [send] = of(SendJob, run.start(0.0))
    assert run.on_error(1.0, Error(code="worker-busy", message="full", job=send.job)) == []
    assert run.next_deadline() == pytest.approx(1.2)
    assert of(SendJob, run.on_tick(1.1)) == []
    assert of(SendJob, run.on_tick(1.2)) == [send] and not run.bounces.busy


def test_a_bounced_job_cancelled_before_its_resend_is_not_waited_for():
    run = make_run(remote(2))
    first, second = of(SendJob, run.start(0.0))
    run.on_error(1.0, Error(code="worker-busy", message="full", job=first.job))
    run.on_result(1.1, result(second, code=1), [])   # a failure: the others are cancelled
    assert of(SendJob, run.on_tick(1.3)) == [] and run.finished


def test_a_bounced_job_due_as_its_worker_is_declared_gone_goes_elsewhere_only():
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    run.on_error(1.0, Error(code="unknown-worker", message="gone?", job=first.job))   # suspected
    run.on_error(3.9, Error(code="worker-busy", message="full", job=first.job))
    sends = of(SendJob, run.on_tick(4.1))   # the window (3 s) is over as the resend falls due
    assert sends and all(s.worker != first.worker for s in sends)


# ---- peer text and malformed results -----------------------------------------------------

def test_a_worker_name_with_escape_codes_reaches_failure_lines_and_retry_notes_escaped():
    evil = "w\x1b[2J\r\nFAKE: \x9b31m\x7f"
    run = make_run(remote(2), workers=(info("id-aa", evil, slots=2),), keep_going=True)
    first, second = of(SendJob, run.start(0.0))
    [delivered] = of(Deliver, run.on_result(1.0, result(first, code=1), []))
    notes = of(Note, run.on_result(1.0, result(second, status="error", error="disk\x1b[31m\nfull"), []))
    shown = [delivered.worker] + [n.text for n in notes]
    assert notes and delivered.worker == "w\\x1b[2J\\r\\nFAKE: \\x9b31m\\x7f"
    for text in shown:
        assert text.isprintable(), text


def test_a_broker_error_message_becomes_one_line_without_escape_codes():
    run = make_run(remote(1))
    [note] = of(Note, run.on_error(0.0, Error(code="bad-message", message="x\x1b]0;owned\x07\nrake: FAKE")))
    assert note.text.isprintable() and "\\x1b]0;owned\\x07\\nrake: FAKE" in note.text


def test_a_result_output_with_neither_its_bytes_nor_a_digest_is_retried_as_that_workers_error():
    from protocol import FileRef
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    hollow = FileRef(path="out\n.o", mode=0o644)   # no blob, no digest: nothing could be fetched
    effects = run.on_result(1.0, result(first, outputs=(hollow,)), [])
    assert not of(Deliver, effects)   # no download is waited for
    [again] = of(SendJob, effects)
    [note] = of(Note, effects)
    assert again.attempt == 2 and again.worker != first.worker
    assert 'output "out\\n.o" has neither its bytes nor a digest' in note.text
