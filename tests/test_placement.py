"""Tests of worker choice (submitter/view.py, SPEC section 1 "Cost").

cost = (queued + running + my jobs the worker had not yet received at its last report) / slots.
"""

import itertools
from collections import Counter

import pytest

from protocol import Load, WorkerInfo, Workers
from submitter.core import ActionSetRun, RunOptions, SendJob
from submitter.rakefile import parse_rakefile
from submitter.view import FAILING_FOR, WorkerView

ME = "5375626d6974"


def info(wid, name=None, slots=1, queue=0, running=0, seq=1, seen=0):
    return WorkerInfo(id=wid, name=name or wid, host="h", slots=slots, queue=queue,
                      running=running, seq=seq, seen=seen, version="0.1.0")


def view_of(*rows):
    view = WorkerView(ME)
    view.apply(Workers(full=True, workers=tuple(rows)))
    return view


def remote_actions(n):
    body = "".join(f"\tremote-cmd {i}\n" for i in range(n))
    return parse_rakefile("actionset1:\n" + body).actionsets[0]


def dispatch(view, n, depth=2.0):
    """Start an actionset of `n` remote actions against `view`; SendJob effects per worker name."""
    run = ActionSetRun(remote_actions(n), view, itertools.count(1), RunOptions(depth=depth, first_depth=depth), 0.0)
    effects = run.start(0.0)
    sends = [e for e in effects if isinstance(e, SendJob)]
    return Counter(view.name(s.worker) for s in sends), run


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


def test_a_draining_worker_is_never_picked():
    idle_but_draining = WorkerInfo(id="a", name="a", host="h", slots=8, queue=0, running=0, seq=1,
                                   draining=True)
    view = view_of(idle_but_draining, info("b", slots=1, queue=1))
    assert view.pick_worker(below=2.0) == "b"
    assert view.pick_worker(below=1.0) is None


def test_when_every_worker_is_avoided_the_least_cost_one_is_picked():
    view = view_of(info("a", slots=1, queue=1), info("b", slots=1, queue=0))
    assert view.pick_worker(below=2.0, avoid=frozenset({"a", "b"})) == "b"


# ---- apply / apply_load ------------------------------------------------------------------

def test_a_full_table_makes_missing_workers_unconfirmed_not_gone():
    view = view_of(info("a"), info("b"), info("c"))
    gone, confirmed = view.apply(Workers(full=True, workers=(info("b", seq=2), info("d"))), now=5.0)
    assert (gone, confirmed) == ([], [])
    assert set(view.rows) == {"b", "d"}
    assert set(view.unconfirmed) == {"a", "c"}
    assert view.pick_worker(below=9.0) in {"b", "d"}


def test_a_full_table_in_pieces_counts_only_once_whole():
    view = view_of(info("a"), info("b"), info("c"))
    assert view.apply(Workers(full=True, more=True, workers=(info("a", seq=2),)), now=5.0) == ([], [])
    assert set(view.rows) == {"a", "b", "c"} and not view.unconfirmed   # nothing taken yet
    view.apply(Workers(full=True, workers=(info("b", seq=2), info("d"))), now=5.0)
    assert set(view.rows) == {"a", "b", "d"} and set(view.unconfirmed) == {"c"}
    assert view.rows["a"].seq == 2 and view.partial == []


def test_an_unconfirmed_worker_that_reappears_is_confirmed():
    view = view_of(info("a"), info("b"))
    view.suspect_all()
    gone, confirmed = view.apply(Workers(full=True, workers=(info("b", seq=3),)), now=1.5)
    assert confirmed == ["b"] and "b" in view.rows and "a" in view.unconfirmed


def test_an_unconfirmed_worker_expires_after_the_window():
    view = view_of(info("a"))
    view.suspect("a", now=10.0)
    assert view.next_expiry(3.0) == 13.0
    assert view.expire(13.0, 3.0) == []
    assert view.expire(13.1, 3.0) == ["a"]
    assert view.unconfirmed == {}


def test_a_delta_updates_only_its_rows_and_keeps_the_others():
    view = view_of(info("a", queue=0), info("b", queue=0))
    gone, _ = view.apply(Workers(full=False, workers=(info("a", queue=3, seq=2),)))
    assert gone == []
    assert view.rows["a"].queue == 3 and view.rows["b"].queue == 0


def test_a_delta_adds_a_new_worker():
    view = view_of(info("a"))
    view.apply(Workers(full=False, workers=(info("b", name="bee"),)))
    assert set(view.rows) == {"a", "b"}
    assert view.name("b") == "bee"


def test_a_delta_removes_gone_ids_and_returns_them_sorted():
    view = view_of(info("a"), info("b"), info("c"))
    gone, _ = view.apply(Workers(full=False, workers=(), gone=("c", "a")))
    assert gone == ["a", "c"]
    assert set(view.rows) == {"b"}


def test_a_gone_id_the_view_never_had_is_harmless():
    view = view_of(info("a"))
    view.apply(Workers(full=False, workers=(), gone=("zz",)))
    assert set(view.rows) == {"a"}


def test_a_gone_workers_name_is_still_known_for_messages():
    view = view_of(info("id-1", name="host-a"))
    view.apply(Workers(full=False, workers=(), gone=("id-1",)))
    assert view.name("id-1") == "host-a"


def test_a_stale_delta_does_not_overwrite_a_newer_row():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=False, workers=(info("a", queue=0, seq=9),)))
    assert view.rows["a"].queue == 5 and view.rows["a"].seq == 10


def test_a_stale_row_in_a_full_table_does_not_overwrite_a_newer_one():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=True, workers=(info("a", queue=0, seq=3),)))
    assert view.rows["a"].queue == 5


def test_a_newer_delta_overwrites_the_row():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=False, workers=(info("a", queue=1, seq=11, seen=7),)))
    assert (view.rows["a"].queue, view.rows["a"].seen) == (1, 7)


def test_a_load_from_a_result_updates_the_row_with_my_seen_count():
    view = view_of(info("a", slots=2, queue=4, running=2, seq=3, seen=1))
    view.apply_load("a", Load(queue=1, running=1, slots=2, seq=4, seen=((ME, 9), ("other", 50))))
    row = view.rows["a"]
    assert (row.queue, row.running, row.slots, row.seq, row.seen) == (1, 1, 2, 4, 9)


def test_a_stale_load_report_does_not_overwrite_a_newer_row():
    view = view_of(info("a", queue=4, seq=8))
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=8))
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=2))
    assert view.rows["a"].queue == 4 and view.rows["a"].seq == 8


def test_a_load_for_a_worker_not_in_the_table_is_ignored():
    view = view_of(info("a"))
    view.apply_load("ghost", Load(queue=0, running=0, slots=1, seq=99))
    assert set(view.rows) == {"a"}


def test_a_load_without_my_id_means_the_worker_holds_none_of_my_jobs():
    view = view_of(info("a", slots=1, seq=1, seen=5))
    view.sent("a", 6)
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=2, seen=(("other", 3),)))
    assert view.rows["a"].seen == 0
    assert view.cost("a") == 1   # job 6 is still on its way


# ---- placement of bursts -----------------------------------------------------------------

def test_six_actions_on_three_idle_one_slot_workers_land_two_per_worker():
    view = view_of(info("ff03", name="w3"), info("aa01", name="w1"), info("cc02", name="w2"))
    per_worker, run = dispatch(view, 6)
    assert per_worker == {"w1": 2, "w2": 2, "w3": 2}
    assert not run.pending


def test_a_burst_fills_idle_workers_round_robin_in_the_submitters_order():
    view = view_of(info("ff03", name="w3"), info("aa01", name="w1"), info("cc02", name="w2"))
    run = ActionSetRun(remote_actions(3), view, itertools.count(1), RunOptions(first_depth=2.0), 0.0)
    sends = [e for e in run.start(0.0) if isinstance(e, SendJob)]
    assert [s.worker for s in sends] == sorted(("ff03", "aa01", "cc02"), key=view.rank)


def test_a_seventh_action_waits_when_every_worker_is_at_the_depth():
    view = view_of(info("aa01", name="w1"), info("bb02", name="w2"), info("cc03", name="w3"))
    per_worker, run = dispatch(view, 7)
    assert sum(per_worker.values()) == 6
    assert len(run.pending) == 1


def test_fifty_actions_spread_over_8_2_and_16_slots_in_proportion():
    slots = {"w8": 8, "w2": 2, "w16": 16}
    view = view_of(*(info(f"id-{n}", name=n, slots=s) for n, s in slots.items()))
    per_worker, run = dispatch(view, 50)
    assert sum(per_worker.values()) == 50 and not run.pending
    total = sum(slots.values())
    for name, s in slots.items():
        assert abs(per_worker[name] - 50 * s / total) <= 1.5, per_worker
    # Least cost first leaves the costs within one job of each other.
    costs = {view.name(w): view.cost(w) for w in view.rows}
    assert max(costs.values()) - min(costs.values()) <= max(1 / s for s in slots.values()), costs
    assert per_worker["w16"] > per_worker["w8"] > per_worker["w2"]


def test_a_burst_accounts_for_load_already_reported():
    # w1 already reports 2 queued on its 2 slots: cost 1, so the idle w2 takes the first jobs.
    view = view_of(info("aa01", name="w1", slots=2, queue=2), info("bb02", name="w2", slots=2))
    per_worker, _ = dispatch(view, 4)
    assert per_worker == {"w2": 3, "w1": 1}


def test_a_heartbeat_that_saw_my_jobs_does_not_double_count_them():
    view = view_of(info("aa01", name="w1", slots=1), info("bb02", name="w2", slots=1))
    per_worker, run = dispatch(view, 2)
    assert per_worker == {"w1": 1, "w2": 1}
    w1 = next(w for w in view.rows if view.name(w) == "w1")
    job = next(j for j, d in run.remote.items() if d.worker == w1)
    cost_before = view.cost(w1)
    # w1's next report includes my job in its queue and says it has seen it.
    view.apply(Workers(full=False, workers=(info(w1, name="w1", slots=1, queue=1, running=1, seq=2, seen=job),)))
    assert view.cost(w1) == cost_before == 1


def test_an_actionset_only_fills_slots_until_its_first_result_so_a_worker_joining_late_gets_work():
    """A cluster just started: rake-submit hears of the first worker a moment before the
    second. Queuing ahead on the first would leave the second idle (4 x 3 s took 6 s)."""
    view = view_of(info("w1", slots=2))
    run = ActionSetRun(remote_actions(6), view, itertools.count(1), RunOptions(), 0.0)
    first = [e for e in run.start(0.0) if isinstance(e, SendJob)]
    assert [view.name(s.worker) for s in first] == ["w1", "w1"]
    joined = run.on_workers(0.3, Workers(full=True, workers=(info("w1", slots=2), info("w2", slots=2))))
    assert [view.name(s.worker) for s in joined if isinstance(s, SendJob)] == ["w2", "w2"]
    assert len(run.pending) == 2   # kept here for whichever slot frees first
