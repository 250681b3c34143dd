"""The worker core holding back a submitter's queued jobs after one of them failed."""

from protocol import Cancel, FileRef, encode
from worker.execute import Outcome

from tests.worker_core_helpers import SUB, SUB2, deliver, sent, starts, worker


def test_a_queued_job_starts_when_a_running_ones_process_exits_before_its_result_is_built():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert starts(w.on_exited(1.0, (SUB, 1))) == [(SUB, 2)]
    assert sent(w.on_exited(1.0, (SUB, 1))) == []          # told twice: still one start
    effects = w.on_finished(2.0, (SUB, 1), Outcome("exited"))
    assert starts(effects) == [] and [r.job for r in sent(effects)] == [1]
    assert set(w.running) == {(SUB, 2)} and not w.ending


def test_after_a_failure_that_submitters_queued_jobs_do_not_start_and_are_answered_after_it():
    w = worker(slots=1)
    for n, client in ((1, SUB), (2, SUB), (3, SUB2), (4, SUB)):
        deliver(w, n, client=client, halt_on_failure=True)
    # Its slot goes to the other submitter's job; SUB's queued ones are held back.
    assert starts(w.on_exited(1.0, (SUB, 1), failed=True)) == [(SUB2, 3)]
    assert deliver(w, 5, now=1.1, halt_on_failure=True) == []   # arrived meanwhile: held too
    results = sent(w.on_finished(1.2, (SUB, 1), Outcome("exited", code=5)))
    assert [(r.job, r.status) for r in results] == [(1, "exited"), (2, "cancelled"), (4, "cancelled"), (5, "cancelled")]
    assert "job 1 of this submitter failed" in results[1].error
    late = sent(deliver(w, 6, now=2.0, halt_on_failure=True))   # sent before it heard
    assert [(r.job, r.status) for r in late] == [(6, "cancelled")]
    assert starts(deliver(w, 7, now=2.0, client=SUB2, halt_on_failure=True)) == []   # queued behind 3
    assert [k for k, _, _ in w.queue] == [(SUB2, 7)]


def test_a_failure_also_holds_back_that_submitters_jobs_waiting_for_inputs():
    w = worker(slots=1)
    ref = (FileRef(path="big.bin", mode=0o644, digest="ab" * 32, size=9 << 20),)
    deliver(w, 1, halt_on_failure=True)
    deliver(w, 2, files=ref, halt_on_failure=True)    # waits for its blob
    deliver(w, 3, files=ref)                          # the same, but sent with -k: not held
    w.on_exited(1.0, (SUB, 1), failed=True)
    results = sent(w.on_finished(1.2, (SUB, 1), Outcome("exited", code=5)))
    assert [(r.job, r.status) for r in results] == [(1, "exited"), (2, "cancelled")]
    assert w.gate.keys() == [(SUB, 3)]


def test_jobs_held_behind_an_exit_that_turns_out_an_error_to_retry_go_on_as_before():
    # The worker's disk was full, say: the submitter retries that action, and nothing failed.
    w = worker(slots=1)
    for n in (1, 2, 3):
        deliver(w, n, halt_on_failure=True)
    assert starts(w.on_exited(1.0, (SUB, 1), failed=True)) == []          # paused
    effects = w.on_finished(1.2, (SUB, 1), Outcome("error", error="the worker's disk is full"))
    assert [(r.job, r.status) for r in sent(effects)] == [(1, "error")] and starts(effects) == [(SUB, 2)]
    assert starts(deliver(w, 4, now=1.3, halt_on_failure=True)) == []     # queued, not refused
    assert [k for k, _, _ in w.queue] == [(SUB, 3), (SUB, 4)]


def test_with_keep_going_a_failure_holds_nothing_back():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert starts(w.on_exited(1.0, (SUB, 1), failed=True)) == [(SUB, 2)]
    assert [r.job for r in sent(w.on_finished(1.2, (SUB, 1), Outcome("exited", code=5)))] == [1]


def test_a_job_killed_by_a_cancel_holds_nothing_back():
    w = worker(slots=1)
    deliver(w, 1, halt_on_failure=True)
    deliver(w, 2, halt_on_failure=True)
    w.on_frames(1.0, encode(Cancel(job=1, worker="57ff", client=SUB, kill=True)))
    assert starts(w.on_exited(1.1, (SUB, 1), failed=True)) == [(SUB, 2)]


def test_an_exit_of_an_unknown_job_starts_nothing():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert w.on_exited(1.0, (SUB, 99)) == []
    assert len(w.queue) == 1


def test_jobs_still_being_collected_hold_at_most_one_more_job_per_slot():
    """A big job's outputs are collected on a pool after its slot was freed: the worker does
    not let such jobs pile up without bound (their directories, their open capture files)."""
    w = worker(slots=1)
    for n in (1, 2, 3):
        deliver(w, n)
    assert starts(w.on_exited(1.0, (SUB, 1))) == [(SUB, 2)]
    assert starts(w.on_exited(1.0, (SUB, 2))) == []        # job 1 is still being collected
    assert w.load().running == 0
    assert starts(w.on_finished(2.0, (SUB, 1), Outcome("exited"))) == [(SUB, 3)]
