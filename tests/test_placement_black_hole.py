"""A worker that fails every job at once (a full disk) must not take every retry of a run
whose other workers are busy: after FAILING_FOR it gets one job to try, not a slot's worth,
and never an action it has already failed while another worker lives."""

from submitter.core import Failed, SendJob
from submitter.view import FAILING_FOR

from tests.submitter_core_helpers import info, make_run, of, remote, result

BAD, GOOD = "id-aa", "id-bb"


def test_a_worker_failing_everything_gets_one_probe_job_and_no_retry_it_already_failed():
    workers = (info(BAD, "bad", slots=16), info(GOOD, "good", slots=1))
    run = make_run(remote(20), workers=workers, depth=1.0, window=3.0)
    sent = of(SendJob, run.start(0.0))
    to_bad = [s for s in sent if s.worker == BAD]
    assert len(to_bad) == 16
    failed_by_bad = set()
    for s in to_bad:   # its disk is full: every one comes back an error
        run.on_result(1.0, result(s, status="error", error="the worker's disk is full"), [])
        failed_by_bad.add(s.index)
    run.on_tick(5.0)   # the retries have waited their window: relaxed
    later = of(SendJob, run.on_tick(1.0 + FAILING_FOR + 1))
    probes = [s for s in later if s.worker == BAD]
    assert len(probes) <= 1, f"{len(probes)} jobs sent to a worker that failed every job"
    assert not [s for s in probes if s.index in failed_by_bad]


def test_a_full_disk_worker_never_makes_an_action_give_up_while_a_healthy_one_lives():
    workers = (info(BAD, "bad", slots=16), info(GOOD, "good", slots=1))
    run = make_run(remote(20), workers=workers, depth=1.0, window=3.0)
    effects = run.start(0.0)
    now = 0.0
    for _ in range(6):   # six rounds of FAILING_FOR: bad fails whatever it gets, good is busy
        now += 1.0
        for s in [s for s in of(SendJob, effects) if s.worker == BAD]:
            effects += run.on_result(now, result(s, status="error", error="the worker's disk is full"), [])
        effects = run.on_tick(now + 3.5) + run.on_tick(now + FAILING_FOR + 1)
        now += FAILING_FOR + 1
        assert not of(Failed, effects), of(Failed, effects)
    assert run.status == 0
