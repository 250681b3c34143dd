"""Where a burst of remote actions lands across the workers (submitter/core.py, submitter/view.py)."""

import itertools
from collections import Counter

from protocol import Workers
from submitter.core import ActionSetRun, RunOptions, SendJob
from submitter.rakefile import parse_rakefile

from tests.placement_helpers import info, view_of


def remote_actions(n):
    body = "".join(f"\tremote-cmd {i}\n" for i in range(n))
    return parse_rakefile("actionset1:\n" + body).actionsets[0]


def dispatch(view, n, depth=2.0):
    """Start an actionset of `n` remote actions against `view`; SendJob effects per worker name."""
    run = ActionSetRun(remote_actions(n), view, itertools.count(1), RunOptions(depth=depth, first_depth=depth), 0.0)
    effects = run.start(0.0)
    sends = [e for e in effects if isinstance(e, SendJob)]
    return Counter(view.name(s.worker) for s in sends), run


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
