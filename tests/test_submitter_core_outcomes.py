"""An actionset run's local actions, successes and failures (submitter/core.py)."""

import itertools

from submitter.core import (
    EXIT_FAILED, EXIT_OK, ActionSetRun, Deliver, Withdrawn, RunLocal, RunOptions, SendCancel,
    SendJob,
)

from tests.submitter_core_helpers import actionset, info, make_run, of, remote, result, three_workers


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
