"""An actionset run under -j, interrupted, or bounced by a full worker queue."""

import pytest

from protocol import Error
from submitter.core import EXIT_INTERRUPTED, RunLocal, SendCancel, SendJob

from tests.submitter_core_helpers import actionset, info, make_run, of, remote, result, three_workers


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
