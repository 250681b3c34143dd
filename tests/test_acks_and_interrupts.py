"""The submitter's pending acknowledgements and its interrupt gate, in memory."""

import signal

import pytest

from protocol import FileRef, Job, decode, encode
from protocol.codec import MAX_HEADER
from submitter.acks import PendingAcks, job_frames
from submitter.interrupts import Interrupted, held, on_signal

W1, W2 = "57aa", "57bb"


def job(n, worker=W1, files=()):
    return Job(job=n, worker=worker, command="true", files=files)


def test_first_results_ride_on_the_next_job_to_their_worker_and_are_then_no_longer_owed():
    acks = PendingAcks()
    acks.add(W1, 1, repeat=False)
    acks.add(W1, 2, repeat=False)
    acks.add(W2, 3, repeat=False)
    sent, _ = decode(job_frames(job(4), [], acks))
    assert sent.acks == (1, 2)
    assert [(a.worker, a.jobs) for a in acks.flush()] == [(W2, (3,))]
    assert acks.flush() == []


def test_a_repeated_result_is_acknowledged_in_an_ack_of_its_own_never_on_a_job():
    # Its first acknowledgement may have ridden through an older broker that drops `acks`.
    acks = PendingAcks()
    acks.add(W1, 1, repeat=True)
    acks.add(W1, 2, repeat=False)
    sent, _ = decode(job_frames(job(5), [], acks))
    assert sent.acks == (2,)
    [ack] = acks.flush()
    assert (ack.worker, ack.jobs) == (W1, (1,))


def test_acks_that_would_push_a_job_over_the_header_limit_stay_owed_and_the_job_goes_alone():
    def ref(n):
        return FileRef(path=f"d/{n:06}" + "x" * 200, mode=0o644, digest="ab" * 32, size=1)
    each = len(encode(job(9, files=(ref(1), ref(2))))[1]) - len(encode(job(9, files=(ref(1),)))[1])
    files = tuple(ref(n) for n in range((MAX_HEADER - 50_000) // each))   # 50 kB short of it
    big = job(9, files=files)
    acks = PendingAcks()
    for n in range(1, 30000):
        acks.add(W1, n, repeat=False)
    sent, _ = decode(job_frames(big, [], acks))
    assert sent.acks == () and len(sent.files) == len(files)
    [ack] = acks.flush()
    assert len(ack.jobs) == 29999


def test_an_interrupt_while_held_is_raised_when_the_held_section_ends():
    steps = []
    with pytest.raises(Interrupted) as caught:
        with held:
            on_signal(signal.SIGTERM, None)
            steps.append("finished the step")
    assert steps == ["finished the step"] and caught.value.status == 143


def test_an_interrupt_outside_a_held_section_is_raised_at_once_and_the_first_one_held_wins():
    with pytest.raises(Interrupted) as caught:
        on_signal(signal.SIGINT, None)
    assert caught.value.status == 130
    held.handled = None   # a second interrupt a while later, not one of a burst
    with pytest.raises(Interrupted) as caught:
        with held:
            with held:
                on_signal(signal.SIGINT, None)
            on_signal(signal.SIGTERM, None)   # still held: nested sections end together
    assert caught.value.status == 130


def test_once_an_interrupt_is_acted_on_a_burst_changes_nothing_but_insisting_does(monkeypatch):
    from submitter import interrupts
    clock = [100.0]
    monkeypatch.setattr(interrupts.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(interrupts.held, "handled", None)
    interrupts.acting_on_interrupt()
    clock[0] += 0.01
    on_signal(signal.SIGTERM, None)   # `timeout` signalling the group too: the clean-up goes on
    assert interrupts.held.caught is None
    clock[0] += 2.0                   # Ctrl-C again, later: the clean-up seems stuck
    with pytest.raises(Interrupted) as caught:
        on_signal(signal.SIGINT, None)
    assert caught.value.status == 130
