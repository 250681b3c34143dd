"""Tests of the worker's logic (worker/core.py, SPEC sections 1, 3 and 6), on a fake clock."""

import hashlib

import pytest

from protocol import Ack, Bye, Cancel, Error, FileRef, Heartbeat, Job, Ready, Result, decode, encode
from protocol.messages import MAX_SEEN
from protocol.timing import Timing
from worker.core import Kill, Reconnect, Send, Start, WorkerCore
from worker.inputs import Fetch
from worker.execute import Outcome

TIMING = Timing(heartbeat=1.0, liveness=3, backoff_min=1.0, backoff_max=8.0)
SUB, SUB2 = "53aa", "53bb"


def worker(slots=2, now=0.0):
    return WorkerCore("w1", "host-a", slots, TIMING, now)


def job(n, client=SUB, **kw):
    return Job(job=n, worker="57ff", command=f"step {n}", client=client, **kw)


def deliver(w, n, now=1.0, client=SUB, blobs=(), **kw):
    return w.on_frames(now, encode(job(n, client, **kw), list(blobs)))


def sent(effects):
    """The messages among `effects`, decoded."""
    return [decode(e.frames)[0] for e in effects if isinstance(e, Send)]


def starts(effects):
    return [e.key for e in effects if isinstance(e, Start)]


# ---- queue and slots ---------------------------------------------------------------------

def test_jobs_start_up_to_the_slot_count_and_the_rest_queue():
    w = worker(slots=2)
    assert starts(deliver(w, 1)) == [(SUB, 1)]
    assert starts(deliver(w, 2)) == [(SUB, 2)]
    assert starts(deliver(w, 3)) == []
    assert starts(deliver(w, 4)) == []
    assert set(w.running) == {(SUB, 1), (SUB, 2)}
    assert [k for k, _, _ in w.queue] == [(SUB, 3), (SUB, 4)]


def test_start_names_each_input_by_the_digest_of_its_stored_blob():
    w = worker()
    data = b"int main(){}"
    effects = deliver(w, 1, blobs=[data], files=(FileRef(path="m.c", mode=0o644, blob=0),))
    [start] = [e for e in effects if isinstance(e, Start)]
    digest = hashlib.sha256(data).hexdigest()
    assert start.job.command == "step 1" and start.files == [("m.c", 0o644, digest)]
    assert w.gate.store.blobs[digest] == data


def test_a_job_whose_blob_is_not_here_waits_for_one_fetch_shared_with_others():
    w = worker(slots=4)
    digest = "ab" * 32
    ref = (FileRef(path="big.bin", mode=0o644, digest=digest, size=9 << 20),)
    [fetch, beat] = deliver(w, 1, files=ref)   # (and the load it now has is reported at once)
    assert (fetch.client, fetch.digest, fetch.size) == (SUB, digest, 9 << 20)
    assert decode(beat.frames)[0].load.queue == 1
    assert deliver(w, 2, files=ref) == []              # the same blob is fetched once
    assert w.load().queue == 2 and w.load().running == 0
    w.gate.store.blobs[digest] = b"..."
    starts = w.on_fetched(1.0, digest, ok=True)
    assert sorted(s.key[1] for s in starts) == [1, 2]


def test_a_corrupted_inline_blob_is_never_used_but_fetched_again():
    w = worker()
    good = b"right bytes"
    digest = hashlib.sha256(good).hexdigest()
    ref = (FileRef(path="f", mode=0o644, blob=0, digest=digest, size=len(good)),)
    [fetch] = [e for e in deliver(w, 1, blobs=[b"wrong bytes"], files=ref) if isinstance(e, Fetch)]
    assert fetch.digest == digest and digest not in w.gate.store.blobs


def test_a_failed_fetch_answers_its_jobs_with_an_error_result():
    w = worker()
    digest = "cd" * 32
    deliver(w, 1, files=(FileRef(path="f", mode=0o644, digest=digest, size=5),))
    [send] = w.on_fetched(1.0, digest, ok=False, why="gone")
    msg, _ = decode(send.frames)
    assert msg.status == "error" and "could not fetch" in msg.error


def test_load_reports_queue_running_and_the_last_job_seen_per_client():
    w = worker(slots=2)
    for n in (1, 2, 3):
        deliver(w, n)
    deliver(w, 7, client=SUB2)
    load = w.load()
    assert (load.queue, load.running, load.slots) == (4, 2, 2)
    assert dict(load.seen) == {SUB: 3, SUB2: 7}


def test_a_job_reaching_a_quiet_worker_is_reported_at_once_so_other_submitters_see_it():
    w = worker(slots=2)
    [beat] = sent(deliver(w, 1, now=1.0))   # nothing said of our load since we started
    assert isinstance(beat, Heartbeat) and (beat.load.queue, beat.load.running) == (1, 1)
    assert sent(deliver(w, 2, now=1.01)) == []   # a burst: one report, results carry the rest
    assert [type(m) for m in sent(deliver(w, 3, now=1.5))] == [Heartbeat]


def test_jobs_from_more_submitters_than_a_load_report_can_name_still_leave_a_report_to_send():
    w = worker(slots=1)
    clients = [f"53{i:06x}" for i in range(MAX_SEEN + 10)]
    for n, client in enumerate(clients, 1):
        deliver(w, n, client=client)
    [beat] = sent(w.on_tick(2.5))   # a heartbeat that encodes: the worker stays up
    assert isinstance(beat, Heartbeat) and len(beat.load.seen) == MAX_SEEN
    assert dict(beat.load.seen)[clients[0]] == 1   # the running job's submitter is named


def test_every_load_report_has_a_larger_seq():
    w = worker()
    seqs = [w.load().seq for _ in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_a_finished_job_is_reported_and_the_next_queued_job_starts():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    effects = w.on_finished(2.0, (SUB, 1), Outcome("exited", code=3, stdout=b"out", stderr=b"err"))
    [res] = sent(effects)
    assert isinstance(res, Result)
    assert (res.job, res.client, res.status, res.code) == (1, SUB, "exited", 3)
    assert starts(effects) == [(SUB, 2)]
    assert res.load.queue == 1          # job 2, about to run


def test_a_result_carries_stdout_stderr_and_outputs_as_blobs():
    from worker.sandbox import OutputFile
    w = worker()
    deliver(w, 1)
    outcome = Outcome("exited", stdout=b"o", stderr=b"e",
                      outputs=[OutputFile("bin/x", 0o755, b"\x7fELF")], skipped=["l: symlink not returned"])
    [send] = w.on_finished(2.0, (SUB, 1), outcome)
    res, blobs = decode(send.frames)
    assert blobs[res.stdout] == b"o" and blobs[res.stderr] == b"e"
    [out] = res.outputs
    assert (out.path, out.mode, blobs[out.blob]) == ("bin/x", 0o755, b"\x7fELF")
    assert res.skipped == ("l: symlink not returned",)


@pytest.mark.parametrize("out, err", [(b"", b""), (b"", b"e"), (b"o", b"")])
def test_an_empty_stream_travels_as_no_frame_and_the_others_still_line_up(out, err):
    from worker.sandbox import OutputFile
    w = worker()
    deliver(w, 1)
    outcome = Outcome("exited", stdout=out, stderr=err, outputs=[OutputFile("x", 0o644, b"made")])
    [send] = w.on_finished(2.0, (SUB, 1), outcome)
    res, blobs = decode(send.frames)
    assert len(blobs) == bool(out) + bool(err) + 1
    assert (res.stdout is None) == (not out) and (res.stderr is None) == (not err)
    assert (blobs[res.stdout] if out else b"", blobs[res.stderr] if err else b"") == (out, err)
    assert blobs[res.outputs[0].blob] == b"made"


def test_a_result_says_which_streams_the_worker_cut_and_why_it_killed_the_job():
    w = worker()
    deliver(w, 1)
    outcome = Outcome("signalled", code=9, stdout=b"y\n" * 8, truncated=("stdout",),
                      error="killed: disk limit: sandbox, tmp and output passed 16 MiB")
    [res] = sent(w.on_finished(2.0, (SUB, 1), outcome))
    assert res.truncated == ("stdout",)
    assert res.error.startswith("killed: disk limit")


def test_the_same_job_id_from_two_clients_is_two_jobs():
    w = worker(slots=2)
    assert starts(deliver(w, 1, client=SUB)) == [(SUB, 1)]
    assert starts(deliver(w, 1, client=SUB2)) == [(SUB2, 1)]


def test_a_duplicate_job_delivery_is_ignored_while_running_or_queued():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert deliver(w, 1) == []
    assert deliver(w, 2) == []
    assert len(w.running) == 1 and len(w.queue) == 1


def test_a_finish_for_an_unknown_job_is_ignored():
    assert worker().on_finished(1.0, (SUB, 99), Outcome("exited")) == []


# ---- cancel ------------------------------------------------------------------------------

def test_cancelling_a_queued_job_answers_cancelled_and_never_starts_it():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    effects = w.on_frames(2.0, encode(Cancel(job=2, worker="57ff", client=SUB)))
    [res] = sent(effects)
    assert (res.job, res.status) == (2, "cancelled")
    assert not w.queue
    assert starts(w.on_finished(3.0, (SUB, 1), Outcome("exited"))) == []


def test_cancelling_a_running_job_with_kill_kills_it_and_reports_it_cancelled():
    w = worker(slots=1)
    deliver(w, 1)
    effects = w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=True, client=SUB)))
    assert effects == [Kill((SUB, 1))]
    [res] = sent(w.on_finished(2.5, (SUB, 1), Outcome("signalled", code=9)))
    assert res.status == "cancelled"


def test_cancelling_a_running_job_without_kill_lets_it_finish():
    w = worker(slots=1)
    deliver(w, 1)
    assert w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=False, client=SUB))) == []
    [res] = sent(w.on_finished(3.0, (SUB, 1), Outcome("exited", code=0)))
    assert res.status == "exited"


def test_a_cancel_from_another_client_does_not_touch_my_job():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    assert w.on_frames(2.0, encode(Cancel(job=2, worker="57ff", kill=True, client=SUB2))) == []
    assert w.on_frames(2.0, encode(Cancel(job=1, worker="57ff", kill=True, client=SUB2))) == []
    assert len(w.queue) == 1 and (SUB, 1) in w.running


def test_a_cancel_without_kill_for_a_job_never_received_is_answered_cancelled():
    # Its JOB was bounced or lost on the way; the submitter cannot tell and waits for an answer.
    w = worker(slots=1)
    [res] = sent(w.on_frames(2.0, encode(Cancel(job=7, worker="57ff", kill=False, client=SUB))))
    assert (res.job, res.client, res.status) == (7, SUB, "cancelled") and w.outbox.get((SUB, 7)) is not None
    assert sent(w.on_frames(2.0, encode(Cancel(job=8, worker="57ff", kill=True, client=SUB)))) == []
    [again] = sent(w.on_frames(3.0, encode(Cancel(job=7, worker="57ff", kill=False, client=SUB))))
    assert (again.job, again.status) == (7, "cancelled")   # asked again: the kept RESULT, again


def test_a_killing_cancel_for_an_unknown_job_is_ignored():
    assert worker().on_frames(1.0, encode(Cancel(job=5, worker="57ff", kill=True, client=SUB))) == []


# ---- drain -------------------------------------------------------------------------------

def test_drain_answers_queued_jobs_with_an_error_and_tells_the_broker_at_once():
    w = worker(slots=1)
    deliver(w, 1)
    deliver(w, 2)
    deliver(w, 3)
    msgs = sent(w.drain(5.0))
    results = [m for m in msgs if isinstance(m, Result)]
    assert sorted(r.job for r in results) == [2, 3]
    assert all(r.status == "error" and "draining" in r.error for r in results)
    # The broker hears right away that this worker takes nothing more: a BYE, or a load
    # report that says it is draining.
    announce = [m for m in msgs if not isinstance(m, Result)]
    assert announce
    assert all(isinstance(m, Bye) or (isinstance(m, Heartbeat) and getattr(m.load, "draining", False))
               for m in announce)
    assert (SUB, 1) in w.running and not w.queue and not w.settled(1.0)


def test_a_drained_worker_says_bye_when_it_leaves():
    w = worker(slots=1)
    deliver(w, 1)
    msgs = sent(w.drain(5.0))
    w.on_finished(6.0, (SUB, 1), Outcome("exited"))
    if not any(isinstance(m, Bye) for m in msgs):
        msgs = sent(w.leave(7.0))
    assert any(isinstance(m, Bye) for m in msgs)


def test_a_draining_worker_finishes_running_jobs_and_refuses_new_ones():
    w = worker(slots=1)
    deliver(w, 1)
    w.drain(1.5)
    [refused] = sent(deliver(w, 9, now=2.0))
    assert (refused.job, refused.status) == (9, "error")
    effects = w.on_finished(2.5, (SUB, 1), Outcome("exited"))
    assert [m.status for m in sent(effects)] == ["exited"] and starts(effects) == []
    assert not w.settled(2.5)   # its result's ACK is still to come


@pytest.mark.parametrize("acked", [True, False])
def test_a_draining_worker_waits_for_its_results_acks_but_not_past_a_window(acked):
    w = worker(slots=1)
    deliver(w, 1)
    w.drain(1.5)
    w.on_finished(2.5, (SUB, 1), Outcome("exited"))
    if acked:
        w.on_frames(2.6, encode(Ack(worker="57ff", jobs=(1,), client=SUB)))
        assert w.settled(2.6)
    else:
        assert not w.settled(2.5 + TIMING.expiry - 0.01) and w.settled(2.5 + TIMING.expiry)


def test_a_job_carrying_acks_makes_the_worker_forget_those_kept_results_only():
    w = worker(slots=2)
    deliver(w, 1)
    deliver(w, 2)
    w.on_finished(2.0, (SUB, 1), Outcome("exited"))
    w.on_finished(2.0, (SUB, 2), Outcome("exited"))
    assert w.outbox.get((SUB, 1)) is not None and w.outbox.get((SUB, 2)) is not None
    assert starts(deliver(w, 3, now=3.0, acks=(1,))) == [(SUB, 3)]
    assert w.outbox.get((SUB, 1)) is None and w.outbox.get((SUB, 2)) is not None


def test_acks_on_a_duplicate_job_still_count():
    w = worker(slots=2)
    deliver(w, 1)
    deliver(w, 2)
    w.on_finished(2.0, (SUB, 1), Outcome("exited"))
    assert deliver(w, 2, now=3.0, acks=(1,)) == []   # job 2 is still running: a duplicate
    assert w.outbox.get((SUB, 1)) is None


def test_a_job_resent_while_it_is_killed_for_its_dropped_submitter_runs_again_and_answers():
    # The broker dropped the submitter (silent too long) and the worker kills its jobs; the
    # submitter comes back and resends job 1 before the kill has ended. Ignoring it as a
    # duplicate would leave the submitter waiting forever: the killed run answers nobody.
    w = worker(slots=2)
    deliver(w, 1)
    [kill] = w.on_frames(2.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    assert isinstance(kill, Kill) and kill.key == (SUB, 1)
    assert deliver(w, 1, now=3.0) == []
    w.on_exited(1.0, (SUB, 1))
    effects = w.on_finished(3.5, (SUB, 1), Outcome("signalled", code=9))
    assert [m for m in sent(effects) if not isinstance(m, Heartbeat)] == [] and starts(effects) == [(SUB, 1)]
    [result] = sent(w.on_finished(4.0, (SUB, 1), Outcome("exited")))
    assert (result.job, result.status) == (1, "exited")


@pytest.mark.parametrize("then", ["cancel kill", "cancel everything"])
def test_a_job_resent_while_it_is_killed_and_then_cancelled_does_not_run_again(then):
    # As above, but the submitter then cancels it (Ctrl-C), or leaves for good: the copy
    # waiting for the kill to end must go too, or the action runs after all.
    w = worker(slots=2)
    deliver(w, 1)
    w.on_frames(2.0, encode(Cancel(job=0, worker="57ff", client=SUB, everything=True)))
    assert deliver(w, 1, now=3.0) == []
    cancel = (Cancel(job=1, worker="57ff", kill=True, client=SUB) if then == "cancel kill"
              else Cancel(job=0, worker="57ff", client=SUB, everything=True))
    w.on_frames(3.1, encode(cancel))
    w.on_exited(3.2, (SUB, 1))
    effects = w.on_finished(3.5, (SUB, 1), Outcome("signalled", code=9))
    assert starts(effects) == [] and not w.running and not w.rerun
    if then == "cancel kill":
        assert [(m.job, m.status) for m in sent(effects) if isinstance(m, Result)] == [(1, "cancelled")]


# ---- the broker link ---------------------------------------------------------------------

def test_greet_sends_ready_with_name_host_and_load():
    w = worker(slots=3)
    [ready] = sent(w.greet(0.0))
    assert isinstance(ready, Ready)
    assert (ready.name, ready.host, ready.load.slots, ready.load.queue) == ("w1", "host-a", 3, 0)


def test_a_heartbeat_goes_out_once_per_interval_with_the_load():
    w = worker()
    w.greet(0.0)
    assert w.on_tick(0.5) == []
    [beat] = sent(w.on_tick(1.0))
    assert isinstance(beat, Heartbeat) and beat.load.slots == 2
    assert w.on_tick(1.5) == []
    assert len(sent(w.on_tick(2.0))) == 1


def test_broker_silence_beyond_expiry_plus_backoff_reconnects_and_greets():
    w = worker()
    w.greet(0.0)
    silence = TIMING.expiry + TIMING.backoff_min
    for t in (1.0, 2.0, 3.0, 4.0):
        effects = w.on_tick(t)
        assert not any(isinstance(e, Reconnect) for e in effects)
    effects = w.on_tick(silence + 0.001)
    assert isinstance(effects[0], Reconnect)
    assert [type(m) for m in sent(effects)] == [Ready]


def test_a_broker_never_heard_is_reported_as_not_answering_yet_rather_than_silent():
    lines = []
    w = WorkerCore("w1", "host-a", 2, TIMING, 0.0, log=lines.append)
    w.greet(0.0)
    w.on_tick(TIMING.expiry + TIMING.backoff_min + 0.1)
    assert "no answer from the broker" in lines[-1] and "silent" not in lines[-1]
    w.on_frames(10.0, encode(Heartbeat(welcome=True)))
    w.on_tick(10.0 + TIMING.expiry + TIMING.backoff_min + 0.1)
    assert "broker silent for" in lines[-1]


def test_excused_silence_of_a_broker_sharing_our_stopped_loop_causes_no_reconnect():
    w = worker()
    w.greet(0.0)
    w.excuse_silence(60.0)
    assert not any(isinstance(e, Reconnect) for e in w.on_tick(60.0))
    assert any(isinstance(e, Reconnect) for e in w.on_tick(60.0 + TIMING.expiry + TIMING.backoff_min + 0.1))


def test_reconnect_backoff_doubles_up_to_the_maximum():
    w = worker()
    w.greet(0.0)
    now, waits = 0.0, []
    for _ in range(7):
        before = now
        # Tick in steps until the next reconnect, with the broker silent all along.
        while True:
            now += 0.25
            effects = w.on_tick(now)
            if any(isinstance(e, Reconnect) for e in effects):
                break
        waits.append(now - before - TIMING.expiry)
    # The wait beyond the liveness window: 1, 2, 4, 8 (the maximum), 8, ...
    assert [round(x) for x in waits] == [1, 2, 4, 8, 8, 8, 8]


def test_hearing_from_the_broker_resets_the_backoff():
    w = worker()
    w.greet(0.0)
    w.on_tick(4.5)
    w.on_tick(10.0)
    assert w.backoff == 4.0
    w.on_frames(10.5, encode(Heartbeat()))
    assert w.backoff == TIMING.backoff_min
    assert not any(isinstance(e, Reconnect) for e in w.on_tick(14.4))
    assert any(isinstance(e, Reconnect) for e in w.on_tick(14.6))


def test_next_deadline_is_the_earlier_of_heartbeat_and_silence():
    w = worker()
    w.greet(0.0)
    assert w.next_deadline() == 1.0
    w.on_tick(1.0)
    assert w.next_deadline() == 2.0


def test_an_unknown_peer_error_makes_the_worker_send_ready_again():
    w = worker()
    deliver(w, 1)
    [ready] = sent(w.on_frames(2.0, encode(Error(code="unknown-peer", message="send READY"))))
    assert isinstance(ready, Ready) and ready.load.queue == 1


def test_other_errors_from_the_broker_change_nothing_but_are_logged_once_each():
    lines = []
    w = WorkerCore("w1", "host-a", 2, TIMING, 0.0, log=lines.append)
    refusal = Error(code="bad-message", message="a submitter key may not send READY")
    for t in (1.0, 2.0, 3.0):
        assert w.on_frames(t, encode(refusal)) == []
    assert w.on_frames(4.0, encode(Error(code="bad-message", message="x"))) == []
    assert len(lines) == 2 and "is --curve-key a worker key" in lines[0], lines


def test_garbage_from_the_broker_is_counted_and_never_raises():
    w = worker()
    for frames in ([], [b"junk"], [b"RAKE/1", b"\xc1"], [b"RAKE/2", encode(Heartbeat())[1]]):
        assert w.on_frames(1.0, frames) == []
    assert w.stats["rejected"] == 4


def test_next_deadline_moves_forward_after_a_tick_at_that_deadline():
    w = worker()
    w.greet(0.0)
    now = 0.0
    for _ in range(20):
        now = w.next_deadline()
        w.on_tick(now)
        assert w.next_deadline() > now, f"deadline stuck at {now}"


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
