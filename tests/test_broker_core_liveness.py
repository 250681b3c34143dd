"""The broker core's liveness: silent, departed and unroutable peers, and its deadlines."""

import pytest

from broker.core import BrokerCore, Send
from protocol import Bye, Cancel, Error, Heartbeat, Job, Ready, Result, Workers, decode, encode

from tests.broker_core_helpers import SUB, TIMING, W1, W2, cluster, core, hello, load, messages_to, ready


# ---- liveness ----------------------------------------------------------------------------

def test_a_forwarded_job_counts_in_its_workers_row_for_every_submitter_at_the_next_push():
    """Submitters started together each saw every worker idle and all picked the same one."""
    b = cluster()
    hello(b, "53bb", 0.0)
    b.on_tick(TIMING.push_delay * 2)
    b.on_frames(1.0, SUB, encode(Job(job=7, worker=W1, command="x")))
    pushed = {s.peer: decode(s.frames)[0] for s in b.on_tick(1.0 + TIMING.push_delay) if s.peer in (SUB, "53bb")}
    row = {peer: next(w for w in msg.workers if w.id == W1) for peer, msg in pushed.items()}
    assert (row["53bb"].queue, row["53bb"].seen) == (1, 0)   # busier for the other submitter
    assert (row[SUB].queue, row[SUB].seen) == (1, 7)         # the sender's own job: seen, counted once


def test_a_silent_worker_expires_after_the_liveness_window_and_submitters_are_told():
    b = cluster()
    expiry = TIMING.heartbeat * TIMING.liveness
    # W2 and the submitter keep talking; W1 says nothing after t=0.
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W2, encode(Heartbeat()))
        b.on_frames(t, SUB, encode(Heartbeat()))
        b.on_tick(t)
    b.on_tick(expiry - 0.001)
    assert b.table.role(W1) == "worker"
    sends = b.on_tick(expiry + 0.001)
    assert b.table.role(W1) is None and b.table.role(W2) == "worker"
    [delta] = messages_to(sends, SUB, Workers)
    assert delta.gone == (W1,) and delta.workers == ()


def test_silence_excused_after_a_stopped_loop_drops_nobody_but_later_silence_still_counts():
    # The embedded cluster: broker, worker and submitter share a loop that was stopped for
    # ten liveness windows; when it runs again nobody has had a chance to speak.
    b = cluster()
    b.excuse_silence(30.0)
    b.on_tick(30.0)
    assert {b.table.role(p) for p in (W1, W2, SUB)} == {"worker", "submitter"}
    b.on_frames(31.0, W2, encode(Heartbeat()))
    b.on_frames(31.0, SUB, encode(Heartbeat()))
    b.on_tick(33.5)
    assert b.table.role(W1) is None and b.table.role(W2) == "worker"


def test_a_submitter_dropped_after_the_worker_holding_its_job_is_still_logged():
    b = cluster()
    lines = []
    b.log = lines.append
    b.on_frames(0.0, SUB, encode(Job(job=1, worker=W1, command="x")))
    b.on_frames(0.5, SUB, encode(Heartbeat()))   # a cut link: W1 goes silent first, then it
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W2, encode(Heartbeat()))
    b.on_tick(3.2)
    b.on_tick(3.6)
    assert b.table.role(W1) is None and b.table.role(SUB) is None
    assert any(line.startswith("submitter sub dropped: silent") for line in lines), lines


def test_a_silent_submitter_is_forgotten_too_and_the_log_says_so():
    b = cluster()
    lines = []
    b.log = lines.append
    b.on_frames(0.0, SUB, encode(Job(job=1, worker=W1, command="x")))   # it had work here
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W1, encode(Heartbeat()))
        b.on_frames(t, W2, encode(Heartbeat()))
    b.on_tick(3.5)
    assert b.table.role(SUB) is None and b.table.role(W1) == "worker"
    assert lines == ["submitter sub dropped: silent for the liveness window (3s: gone, stopped, or on a link "
                     "too slow for --heartbeat 1); its jobs are cancelled"]
    hello(b, "53bb", 4.0)
    b.on_frames(4.1, "53bb", encode(Bye(reason="done")))   # a run that ended says bye: no line
    hello(b, "53cc", 4.0)                                   # one that chose another broker of
    b.on_tick(8.0)                                          # its HOSTS goes silent here: no line
    assert [line for line in lines if line.startswith("submitter")] == lines[:1]


def test_a_worker_saying_bye_is_announced_as_gone_at_the_next_tick():
    b = cluster()
    b.on_frames(1.0, W2, encode(Bye(reason="draining")))
    [delta] = messages_to(b.on_tick(1.0), SUB, Workers)
    assert delta.gone == (W2,)


def test_a_departure_goes_out_at_once_even_while_a_row_change_waits_to_be_coalesced():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=3, seq=2))))   # due at 1.0 + push_delay
    b.on_frames(1.001, W2, encode(Bye(reason="draining")))
    [delta] = messages_to(b.on_tick(1.002), SUB, Workers)
    assert delta.gone == (W2,)


def test_an_unroutable_worker_is_dropped_and_announced():
    b = cluster()
    b.on_unroutable(W1)
    assert b.stats["unroutable"] == 1
    [delta] = messages_to(b.on_tick(1.0), SUB, Workers)
    assert delta.gone == (W1,)


def test_right_after_our_own_stall_an_unroutable_worker_is_left_to_its_liveness():
    # Stopped (SIGSTOP) past the window, the broker finds its workers reconnecting: dropping
    # them as gone made submitters run their finished actions again.
    b = cluster()
    b.on_frames(0.5, SUB, encode(Job(job=7, worker=W1, command="true")))
    b.excuse_silence(5.0)
    b.on_frames(5.0, W2, encode(Heartbeat()))
    job = Send(W1, [], job=(SUB, 7))
    [busy] = messages_to(b.on_unroutable(W1, job), SUB, Error)
    assert (busy.code, busy.job) == ("worker-busy", 7)       # sent again shortly
    deltas = messages_to(b.on_tick(5.5), SUB, Workers)          # not dropped, not announced
    assert b.table.role(W1) == "worker" and all(W1 not in d.gone for d in deltas)
    b.on_frames(9.0, W2, encode(Heartbeat()))
    b.on_unroutable(W1, Send(W1, []))                          # a window later: gone as before
    assert b.table.role(W1) is None


def test_a_dropped_worker_that_comes_back_is_told_to_cancel_the_jobs_it_held():
    b = cluster()
    b.on_frames(0.5, SUB, encode(Job(job=7, worker=W1, command="true")))
    b.on_frames(0.5, SUB, encode(Job(job=8, worker=W2, command="true")))
    b.on_unroutable(W1)   # dropped: the submitter hears it is gone and runs job 7 elsewhere
    sends = ready(b, W1, 9.0, name="w1", slots=8, seq=50)
    [cancel] = messages_to(sends, W1, Cancel)
    assert (cancel.job, cancel.client, cancel.kill, cancel.everything) == (7, SUB, True, False)
    assert messages_to(ready(b, W1, 10.0, name="w1", seq=51), W1, Cancel) == []   # told once
    assert messages_to(ready(b, W2, 10.0, name="w2", seq=51), W2, Cancel) == []   # never dropped


def test_a_table_too_big_for_one_header_goes_in_pieces_that_each_fit():
    b = core()
    wide = "\U0001F600" * 250   # 4-byte characters: the largest rows the wire allows
    for i in range(700):
        b.on_frames(0.0, f"57{i:04x}", encode(Ready(name=f"{wide}{i:06d}", host=wide, version="v" * 64,
                                                     load=load())))
    b.on_tick(TIMING.push_delay)   # the join pushes: nobody to push to yet
    pieces = messages_to(hello(b, SUB, 1.0), SUB, Workers)
    assert len(pieces) == 3 and [p.more for p in pieces] == [True, True, False]
    assert all(p.full for p in pieces) and sum(len(p.workers) for p in pieces) == 700
    for i in range(700):   # every row changes at once: the delta comes in pieces too
        b.on_frames(2.0, f"57{i:04x}", encode(Heartbeat(load=load(queue=1, seq=2))))
    deltas = messages_to(b.on_tick(2.0 + TIMING.push_delay), SUB, Workers)
    assert len(deltas) == 3 and not any(d.full or d.more for d in deltas)


def test_a_worker_that_rejoins_is_not_reported_gone():
    b = cluster()
    ready(b, W1, 1.0, name="w1", slots=8, seq=50)
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert delta.gone == () and [w.id for w in delta.workers] == [W1]


def test_next_deadline_is_the_push_delay_after_a_change():
    b = cluster()
    b.on_tick(0.5)      # heartbeats out; now only liveness and heartbeat deadlines remain
    b.on_frames(0.7, W1, encode(Heartbeat(load=load(queue=1, slots=8, seq=2))))
    assert b.next_deadline() == pytest.approx(0.72)


def test_an_empty_broker_has_a_far_deadline():
    assert core(5.0).next_deadline() >= 5.0 + 3600


def test_next_deadline_moves_forward_after_a_tick_at_that_deadline():
    b = cluster()
    now = 0.0
    for _ in range(20):
        if not (b.table.workers or b.table.submitters):
            break  # everybody expired: nothing left to wait for
        deadline = b.next_deadline()
        assert deadline >= now
        now = deadline
        b.on_tick(now)
        assert b.next_deadline() > now, f"deadline stuck at {now}"
    assert not b.table.workers and b.next_deadline() == float("inf")


def test_next_deadline_moves_forward_after_ticks_just_past_each_deadline():
    b = cluster()
    now = 0.0
    while b.table.workers or b.table.submitters:
        deadline = b.next_deadline()
        assert deadline >= now
        now = deadline + 1e-6
        b.on_tick(now)
        assert b.next_deadline() > now
    # Nobody talked after t=0, so everybody expired once the liveness window had passed.
    assert now == pytest.approx(TIMING.expiry, abs=0.01)


def test_after_a_restart_the_jobs_of_a_submitter_that_never_says_hello_are_cancelled():
    """It died (or was interrupted) while we were down: nobody else would cancel its jobs. A
    live one says hello at its next try to reconnect (libzmq: up to 32 s), so it has that long."""
    from protocol.timing import RECONNECT_MAX
    b = core(0.0)   # just restarted
    ready(b, W1, 0.1, queue=1, running=1, seen=((SUB, 4),))
    ready(b, W2, 0.2)
    window = RECONNECT_MAX + TIMING.expiry
    for t in range(1, int(window)):   # the workers stay; no cancel meanwhile
        for w in (W1, W2):
            b.on_frames(float(t), w, encode(Heartbeat(load=load(seq=t + 1))))
        assert not messages_to(b.on_tick(float(t) + 0.5), W1, Cancel), t
    assert b.next_deadline() <= 0.1 + window + 0.01   # its deadline is one we wake for
    cancels = b.on_tick(0.1 + window + 0.02)
    assert [(c.client, c.everything) for c in messages_to(cancels, W1, Cancel)] == [(SUB, True)]
    assert messages_to(cancels, W2, Cancel)   # every worker: a job may be on its way to one
    # a result of that submitter's, resent later, is answered by the same cancel
    late = b.on_frames(window + 1.0, W1, encode(Result(job=4, client=SUB, status="exited")))
    assert [c.everything for c in messages_to(late, W1, Cancel)] == [True]


def test_after_a_restart_a_submitter_that_says_hello_in_time_keeps_its_jobs():
    b = core(0.0)
    ready(b, W1, 0.05)
    b.on_frames(0.1, W1, encode(Result(job=4, client=SUB, status="exited")))   # named by its result
    for t in (1.0, 2.0, 3.5, 5.0, 20.0, 30.0, 32.0, 34.0, 36.0, 38.0, 40.0):
        if t == 30.0:
            hello(b, SUB, t)   # at its next try to reconnect
        for peer in (W1, SUB) if t >= 30.0 else (W1,):
            b.on_frames(t, peer, encode(Heartbeat(load=load(seq=int(t) + 2)) if peer == W1 else Heartbeat()))
        assert not messages_to(b.on_tick(t), W1, Cancel), t


@pytest.mark.parametrize("heartbeat", [0.2, 1.0, 2.0, 10.0])
def test_a_stranger_has_the_submitters_reconnect_wait_plus_a_window_whatever_the_heartbeat(heartbeat):
    """A submitter's socket retries at most RECONNECT_MAX apart (libzmq's, not ours)."""
    from broker.core import BrokerCore
    from protocol.timing import RECONNECT_MAX, Timing
    timing = Timing.from_env(heartbeat)
    assert BrokerCore(timing, 0.0).strangers.window == RECONNECT_MAX + timing.expiry


def test_a_worker_that_rejoined_on_a_new_connection_is_not_logged_as_gone_when_the_old_one_expires():
    lines = []
    b = BrokerCore(TIMING, 0.0, lines.append)
    ready(b, W1, 0.0, name="w1")
    ready(b, "57ee05", 1.0, name="w1")   # reconnected after a stall: a new routing id, the same worker
    b.on_frames(2.0, "57ee05", encode(Heartbeat()))
    b.on_tick(TIMING.expiry + 0.1)
    assert any("worker w1: its previous connection closed (silent for" in line for line in lines), lines
    assert not any("worker w1 left" in line for line in lines)


def test_a_job_from_a_submitter_dropped_for_silence_tells_it_to_say_hello_not_takes_it_back_silently():
    """A loaded machine: the broker dropped a submitter (its jobs were
    cancelled on every worker) whose next message was a JOB. Taken back without a word, the
    submitter never knew its running job had been killed and waited for it for ever."""
    b = cluster()
    b.on_frames(0.0, SUB, encode(Job(job=1, worker=W1, command="x")))
    for t in (1.0, 2.0, 3.0):
        b.on_frames(t, W1, encode(Heartbeat()))
        b.on_frames(t, W2, encode(Heartbeat()))
    b.on_tick(3.5)   # dropped: W1 told to cancel job 1
    assert b.table.role(SUB) is None
    sends = b.on_frames(3.6, SUB, encode(Job(job=2, worker=W2, command="y")))
    [error] = messages_to(sends, SUB, Error)
    assert error.code == "unknown-peer" and not messages_to(sends, W2, Job)
    assert b.table.role(SUB) is None   # a heartbeat of it is answered "unknown-peer" too
    hello(b, SUB, 3.7)
    assert messages_to(b.on_frames(3.8, SUB, encode(Job(job=1, worker=W1, command="x"))), W1, Job)
