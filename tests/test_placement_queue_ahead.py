"""Queueing ahead on workers (submitter/depth.py): short actions are, long ones are not."""

import math

from submitter.core import SendJob

from tests.submitter_core_helpers import info, make_run, of, remote, result


def small_and_big():
    """A 1-slot and a 3-slot worker, and an actionset of 8 actions started on them."""
    run = make_run(remote(8), workers=(info("id-s", "small", 1), info("id-b", "big", 3)), first_depth=1.0)
    sends = of(SendJob, run.start(0.0))
    return run, sends


def to(worker, sends):
    return [s for s in sends if s.worker == worker]


def test_until_every_worker_has_answered_only_free_slots_are_filled():
    run, sends = small_and_big()
    assert (len(to("id-s", sends)), len(to("id-b", sends))) == (1, 3)
    later = of(SendJob, run.on_result(2.0, result(to("id-s", sends)[0], elapsed=0.01), []))
    assert [s.worker for s in later] == ["id-s"]   # big has not answered yet: nothing queued


def test_long_actions_are_not_queued_behind_a_busy_worker_while_another_may_free_first():
    run, sends = small_and_big()
    sends += of(SendJob, run.on_result(2.0, result(to("id-s", sends)[0], elapsed=2.0), []))
    later = of(SendJob, run.on_result(2.01, result(to("id-b", sends)[0], elapsed=2.0), []))
    # The freed slot takes one; none waits in a queue on small, whose slot is taken.
    assert [s.worker for s in later] == ["id-b"]
    assert len(run.pending) == 8 - 6


def test_short_actions_are_queued_ahead_once_every_worker_has_answered():
    run, sends = small_and_big()
    sends += of(SendJob, run.on_result(0.02, result(to("id-s", sends)[0], elapsed=0.01), []))
    later = of(SendJob, run.on_result(0.03, result(to("id-b", sends)[0], elapsed=0.01), []))
    assert len(later) > 1 and not run.pending   # queued ahead, so no slot waits for us


def test_a_worker_that_gives_a_nonsense_run_time_changes_nothing_but_queueing_ahead():
    run, sends = small_and_big()
    for elapsed in (math.nan, math.inf, -5.0):
        run.queue_depth.heard("id-s", result(sends[0], elapsed=elapsed))
    assert run.queue_depth.typical is None
