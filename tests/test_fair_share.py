"""Two submitters sharing workers: one with hundreds of short actions must not starve one
with a handful. Before, the big run refilled each freed slot from its own
RESULT before the small run heard of it through the broker's table, and kept every worker
queued past the small run's threshold: 5 actions of 0.2 s waited for all 300 of the other."""

from __future__ import annotations

import pytest

from protocol import Job
from worker.halts import Halts
from submitter.core import SendJob
from tests.procs import submit, wait_until
from tests.reliability_helpers import ledger_lines, rakefile, start_cluster, start_submit
from tests.submitter_core_helpers import info, make_run, of, remote


def entry(client, job):
    return ((client, job), Job(job=job, worker="57ff", client=client, command="true"), [])


def test_the_worker_starts_the_job_of_the_submitter_with_fewest_running_first():
    queue = [entry("big", 1), entry("big", 2), entry("small", 1), entry("big", 3)]
    running = {("big", 0): None, ("big", 9): None}
    assert Halts(3.0).take_next(queue, running)[0] == ("small", 1)
    assert Halts(3.0).take_next(queue, running)[0] == ("big", 1)   # then in arrival order


def test_a_submitter_with_nothing_on_a_worker_full_of_others_jobs_may_queue_one_there():
    full = (info("id-aa", "w1", slots=2, queue=4), info("id-bb", "w2", slots=2, queue=4))
    run = make_run(remote(5), workers=full, depth=2.0)
    sent = of(SendJob, run.start(0.0))
    assert sorted(s.worker for s in sent) == ["id-aa", "id-bb"]   # one each, not five, not none


@pytest.mark.timeout(120)
def test_a_small_run_is_not_starved_by_a_big_one_on_the_same_workers(procs, tmp_path):
    endpoint, _, _ = start_cluster(procs, tmp_path, ("w1", "w2"), slots=2)
    ledger = tmp_path / "ledger"
    big = rakefile(tmp_path / "big", f"\tremote-echo big >> {ledger}; sleep 0.2\n" * 120)
    small = rakefile(tmp_path / "small", f"\tremote-echo small >> {ledger}; sleep 0.2\n" * 5)
    sub = start_submit(procs, big, "--broker", endpoint, "-q")
    assert wait_until(lambda: len(ledger_lines(ledger)) >= 20, 30)
    res = submit(["--broker", endpoint, "-q"], cwd=small)
    assert res.returncode == 0, res.stderr
    big_by_then = ledger_lines(ledger).count("big")   # it waited for all 120 to start
    assert big_by_then < 60, f"the 5 small actions ended after {big_by_then} of the 120 big ones started"
    sub.communicate(timeout=60)
    assert sub.returncode == 0
    assert ledger_lines(ledger).count("big") == 120 and ledger_lines(ledger).count("small") == 5

