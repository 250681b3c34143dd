"""The worker core's link to the broker: greeting, heartbeats, reconnects, errors."""

from protocol import Error, Heartbeat, Ready, encode
from worker.core import Reconnect, Refetch, WorkerCore

from tests.worker_core_helpers import TIMING, deliver, sent, worker


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
    assert w.silence.backoff == 4.0
    w.on_frames(10.5, encode(Heartbeat()))
    assert w.silence.backoff == TIMING.backoff_min
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


def test_an_unknown_peer_error_has_downloads_asked_again_after_the_ready():
    w = worker()
    out = w.on_frames(2.0, encode(Error(code="unknown-peer", message="send READY")))
    assert isinstance(out[-1], Refetch) and isinstance(sent(out[:-1])[0], Ready)


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
