"""Worker choice (submitter/view.py): the cost of a worker, and pick_worker."""

import itertools

import pytest

from protocol import WorkerInfo, Workers
from submitter.view import FAILING_FOR, WorkerView

from tests.placement_helpers import ME, info, view_of


# ---- cost --------------------------------------------------------------------------------

def test_cost_of_an_idle_worker_is_zero():
    assert view_of(info("a", slots=4)).cost("a") == 0


def test_cost_is_the_reported_queue_over_slots():
    assert view_of(info("a", slots=4, queue=6, running=4)).cost("a") == pytest.approx(1.5)


def test_cost_adds_my_jobs_the_worker_has_not_reported_seeing():
    view = view_of(info("a", slots=4, queue=2, seen=10))
    view.sent("a", 11)
    view.sent("a", 12)
    assert view.cost("a") == pytest.approx((2 + 2) / 4)


def test_my_jobs_up_to_the_seen_count_are_already_in_the_queue_and_not_counted_twice():
    view = view_of(info("a", slots=2, queue=3, seen=12))
    for job in (10, 11, 12, 13):
        view.sent("a", job)
    # 10, 11 and 12 are part of the reported queue of 3; only 13 is still on its way.
    assert view.cost("a") == pytest.approx((3 + 1) / 2)


def test_a_job_that_ended_no_longer_counts():
    view = view_of(info("a", slots=1))
    view.sent("a", 1)
    assert view.cost("a") == 1
    view.ended("a", 1)
    assert view.cost("a") == 0


def test_my_jobs_on_one_worker_do_not_change_the_cost_of_another():
    view = view_of(info("a"), info("b"))
    view.sent("a", 1)
    assert view.cost("b") == 0


# ---- pick_worker -------------------------------------------------------------------------

def test_pick_worker_takes_the_least_cost_worker():
    view = view_of(info("a", slots=2, queue=2), info("b", slots=8, queue=2), info("c", slots=1, queue=1))
    assert view.pick_worker(below=10) == "b"


def test_pick_worker_breaks_cost_ties_by_its_own_order_of_the_workers():
    rows = [info("x2", name="b"), info("x1", name="a"), info("x3", name="c")]
    view = view_of(*rows)
    first = min(("x1", "x2", "x3"), key=view.rank)
    assert view.pick_worker(below=10) == first
    for order in itertools.permutations(rows):   # not the table's order
        assert view_of(*order).pick_worker(below=10) == first


def test_submitters_started_together_spread_over_equally_idle_workers():
    """Each sees every worker idle: ties broken by name would send them all to the same one."""
    rows = (info("aa01", name="w1"), info("bb02", name="w2"))
    picks = []
    for n in range(40):
        view = WorkerView(f"53{n:014x}")
        view.apply(Workers(full=True, workers=rows))
        picks.append(view.pick_worker(below=10))
    assert 10 <= picks.count("aa01") <= 30, picks


def test_pick_worker_returns_none_when_no_worker_is_below_the_threshold():
    view = view_of(info("a", slots=2, queue=4), info("b", slots=1, queue=3))
    assert view.pick_worker(below=2.0) is None


def test_a_worker_exactly_at_the_threshold_does_not_fit():
    view = view_of(info("a", slots=2, queue=4))
    assert view.pick_worker(below=2.0) is None
    assert view.pick_worker(below=2.0001) == "a"


def test_pick_worker_returns_none_with_an_empty_table():
    assert WorkerView(ME).pick_worker(below=2.0) is None


def test_an_avoided_worker_loses_to_a_busier_one_that_fits():
    view = view_of(info("a", slots=1, queue=0), info("b", slots=1, queue=1))
    assert view.pick_worker(below=2.0, avoid=frozenset({"a"})) == "b"


def test_a_retry_waits_for_an_untried_worker_rather_than_go_back_to_an_idle_tried_one():
    # The tried one may be idle because it fails every job at once (a full disk).
    view = view_of(info("a", slots=1, queue=0), info("b", slots=1, queue=5))
    assert view.pick_worker(below=2.0, avoid=frozenset({"a"})) is None
    assert view.pick_worker(below=2.0) == "a"


def test_a_tried_worker_is_used_again_once_every_live_worker_was_tried():
    draining = WorkerInfo(id="c", name="c", host="h", slots=8, queue=0, running=0, seq=1, draining=True)
    view = view_of(info("a", slots=1, queue=0), info("b", slots=1, queue=0), draining)
    assert view.pick_worker(below=2.0, avoid=frozenset({"a", "b"})) == "a"


def test_a_worker_failing_twice_in_a_row_is_passed_over_while_others_live_then_tried_again():
    view = view_of(info("a", slots=1, queue=0), info("b", slots=1, queue=1))
    view.note_result("a", error=True, now=10.0)
    assert view.pick_worker(below=2.0, now=10.0) == "a"          # one error may be chance
    view.note_result("a", error=True, now=11.0)
    assert view.pick_worker(below=2.0, now=12.0) == "b"          # a second: it fails everything
    assert view.pick_worker(below=1.0, now=12.0) is None         # so a job waits for b instead
    assert view.pick_worker(below=2.0, now=11.0 + FAILING_FOR + 1) == "a"   # later: given one to try
    view.note_result("a", error=False, now=50.0)
    assert not view.failing("a", 50.0)


def test_a_failing_worker_is_still_used_when_it_is_the_only_one():
    view = view_of(info("a", slots=1, queue=0))
    for t in (1.0, 2.0, 3.0):
        view.note_result("a", error=True, now=t)
    assert view.pick_worker(below=2.0, now=3.5) == "a"


def test_a_worker_whose_disk_is_full_is_passed_over_while_others_live():
    full = WorkerInfo(id="a", name="a", host="h", slots=8, queue=0, running=0, seq=1, full=True)
    assert view_of(full, info("b", slots=1, queue=1)).pick_worker(below=2.0) == "b"
    assert view_of(full).pick_worker(below=2.0) == "a"   # the only one: its errors say why


def test_a_draining_worker_is_never_picked():
    idle_but_draining = WorkerInfo(id="a", name="a", host="h", slots=8, queue=0, running=0, seq=1,
                                   draining=True)
    view = view_of(idle_but_draining, info("b", slots=1, queue=1))
    assert view.pick_worker(below=2.0) == "b"
    assert view.pick_worker(below=1.0) is None


def test_when_every_worker_is_avoided_the_least_cost_one_is_picked():
    view = view_of(info("a", slots=1, queue=1), info("b", slots=1, queue=0))
    assert view.pick_worker(below=2.0, avoid=frozenset({"a", "b"})) == "b"
