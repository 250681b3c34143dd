"""The worker core after a silence (frozen, or cut off): jobs handed back, joining again."""

from protocol import FileRef, Heartbeat, Ready, Result, encode
from worker.core import WorkerCore
from worker.execute import Outcome

from tests.worker_core_helpers import SUB, TIMING, deliver, job, sent, starts, worker


# ---- after a silence (the worker was frozen, or cut off) -------------------------------------

WELCOME = encode(Heartbeat(welcome=True))


def frozen(w):
    """Job 1 running and job 2 queued at t=1, then nothing heard until t=10: longer than the
    liveness window (3 s), so the broker has dropped us and job 2 may already run elsewhere."""
    deliver(w, 1)
    deliver(w, 2)
    return w.on_exited(10.0, (SUB, 1))   # the first thing seen on waking


def test_after_a_silence_queued_jobs_are_handed_back_and_the_worker_registers_again():
    w = worker(slots=1)
    effects = frozen(w)
    assert starts(effects) == [] and not w.queue
    ready, back = sent(effects)
    assert isinstance(ready, Ready) and (back.job, back.status) == (2, "error") and "cut off" in back.error


def test_jobs_read_before_the_brokers_welcome_were_sent_before_the_silence_and_go_back():
    w = worker(slots=1)
    frozen(w)
    w.on_finished(10.0, (SUB, 1), Outcome("exited"))
    stale = w.on_frames(10.01, encode(job(3)))   # in the socket's buffer while we were frozen
    assert starts(stale) == [] and [(r.job, r.status) for r in sent(stale)] == [(3, "error")]
    w.on_frames(10.05, WELCOME)
    assert starts(deliver(w, 4, now=10.06)) == [(SUB, 4)]   # placed after our READY: runs


def test_without_a_welcome_the_worker_stops_waiting_after_the_liveness_window():
    w = worker(slots=1)
    frozen(w)
    w.on_finished(10.0, (SUB, 1), Outcome("exited"))
    for t in (10.5, 11.5, 12.5):              # a broker of an older release: no welcome
        w.on_frames(t, encode(Heartbeat()))
    assert starts(deliver(w, 3, now=13.6)) == [(SUB, 3)]


def test_a_broker_heard_within_the_liveness_window_changes_nothing():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    w.on_frames(3.5, encode(Heartbeat()))
    assert starts(w.on_exited(6.0, (SUB, 1))) == [(SUB, 2)]


def test_after_a_silence_a_job_waiting_for_its_inputs_is_handed_back_too():
    w = worker(slots=1)
    digest = "ab" * 32
    deliver(w, 1, files=(FileRef(path="big.bin", mode=0o644, digest=digest, size=9 << 20),))
    effects = w.on_tick(10.0)   # frozen with its fetch under way; then the broker restarted
    assert [(r.job, r.status) for r in sent(effects) if isinstance(r, Result)] == [(1, "error")]
    w.on_frames(10.05, WELCOME)
    w.gate.store.blobs[digest] = b"..."
    assert starts(w.on_fetched(10.1, digest, ok=True)) == []   # its submitter placed it again


def test_a_job_whose_inputs_arrived_while_rejoining_starts_when_the_wait_for_a_welcome_ends():
    w = worker(slots=1)
    frozen(w)
    w.on_finished(10.0, (SUB, 1), Outcome("exited"))
    for t in (10.5, 11.5, 12.5):              # an older broker: no welcome will come
        w.on_frames(t, encode(Heartbeat()))
    w.queue.append(((SUB, 5), job(5), []))    # inputs of a job that came after arrived meanwhile
    assert starts(w.on_tick(13.6)) == [(SUB, 5)]


def test_a_kept_result_is_not_given_up_for_time_spent_without_a_broker():
    from worker.outbox import GIVE_UP_AFTER, Outbox
    box = Outbox(window=3.0)
    box.keep(("sub", 1), [b"result"], now=0.0)
    # The broker was away for most of the give-up time; the worker re-registered at 55 s.
    assert box.everything(55.0) == [[b"result"]]
    assert box.due(55.0 + GIVE_UP_AFTER * 3.0 - 1) == [[b"result"]]   # still sent again
    assert box.due(55.0 + GIVE_UP_AFTER * 3.0 + 10) == []             # long after: given up
    assert box.get(("sub", 1)) is None


def test_leaving_with_results_not_acknowledged_says_so():
    lines = []
    w = WorkerCore("w1", "host-a", 2, TIMING, 0.0, log=lines.append)
    deliver(w, 1)
    w.on_exited(1.0, (SUB, 1))
    w.on_finished(1.1, (SUB, 1), Outcome("exited"))
    w.leave(1.2)
    assert any("1 results not acknowledged" in line for line in lines), lines
