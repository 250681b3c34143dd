"""An actionset run with no worker: the no-worker clock and status 69."""

from protocol import Workers
from submitter.core import EXIT_NO_WORKER, EXIT_OK, Failed, SendJob

from tests.submitter_core_helpers import gone, info, make_run, of, remote


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
