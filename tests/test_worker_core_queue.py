"""The worker core's queue and slots: starting, fetching, load reports, results."""

import hashlib

import pytest

from protocol import FileRef, Heartbeat, Result, decode
from protocol.messages import MAX_SEEN
from worker.core import Start
from worker.inputs import Fetch
from worker.execute import Outcome

from tests.worker_core_helpers import SUB, SUB2, deliver, sent, starts, worker


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
    assert msg.status == "error" and msg.error == "could not fetch input 'f': gone"   # named as the user named it


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


def test_inputs_that_cannot_be_stored_are_refused_in_words_not_an_errno(monkeypatch):
    import errno
    import os
    w = worker()
    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(w.gate, "admit", full)
    sends = [e for e in deliver(w, 1) if hasattr(e, "frames")]
    msg, _ = decode(sends[0].frames)
    assert msg.status == "error" and msg.error == "inputs refused: No space left on device"
