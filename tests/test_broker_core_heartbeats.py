"""The broker core's heartbeats and load reports, and the deltas they push."""

import pytest

from protocol import Error, Heartbeat, Load, Result, Workers, encode

from tests.broker_core_helpers import (
    SUB, TIMING, W1, W2, cluster, core, decoded, hello, load, messages_to, ready,
)


# ---- heartbeats and load -----------------------------------------------------------------

def test_a_heartbeat_updates_the_load_and_a_delta_follows_after_the_push_delay():
    b = cluster()
    t = 0.5
    assert b.on_frames(t, W1, encode(Heartbeat(load=load(queue=5, running=4, slots=8, seq=2)))) == []
    assert b.table.workers[W1].load.queue == 5
    assert b.next_deadline() == pytest.approx(t + TIMING.push_delay)
    assert messages_to(b.on_tick(t + 0.01), SUB, Workers) == []
    [delta] = messages_to(b.on_tick(t + TIMING.push_delay), SUB, Workers)
    assert not delta.full
    [row] = delta.workers
    assert (row.id, row.queue, row.running, row.seq) == (W1, 5, 4, 2)


def test_several_heartbeats_within_the_push_delay_make_one_delta():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=1, slots=8, seq=2))))
    b.on_frames(1.005, W2, encode(Heartbeat(load=load(queue=1, slots=2, seq=2))))
    b.on_frames(1.01, W1, encode(Heartbeat(load=load(queue=2, slots=8, seq=3))))
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert {(w.id, w.queue) for w in delta.workers} == {(W1, 2), (W2, 1)}


def test_an_unchanged_heartbeat_pushes_nothing():
    b = cluster()
    same = b.table.workers[W1].load
    b.on_frames(1.0, W1, encode(Heartbeat(load=same)))
    assert b.pushes.due is None
    assert messages_to(b.on_tick(1.5), SUB, Workers) == []


def test_a_newer_heartbeat_with_the_same_state_pushes_nothing():
    b = cluster()
    same = b.table.workers[W1].load
    b.on_frames(1.0, W1, encode(Heartbeat(load=Load(**{**same.__dict__, "seq": same.seq + 1}))))
    assert b.table.workers[W1].load.seq == same.seq + 1
    assert messages_to(b.on_tick(1.5), SUB, Workers) == []


def test_a_stale_load_report_does_not_overwrite_a_newer_one():
    b = cluster()
    b.on_frames(1.0, W1, encode(Heartbeat(load=load(queue=7, slots=8, seq=10))))
    b.on_tick(1.0 + TIMING.push_delay)
    b.on_frames(1.1, W1, encode(Heartbeat(load=load(queue=0, slots=8, seq=9))))
    assert b.table.workers[W1].load.queue == 7
    assert messages_to(b.on_tick(2.0), SUB, Workers) == []


def test_a_result_carrying_a_load_updates_the_table_too():
    b = cluster()
    res = Result(job=1, client=SUB, status="exited", load=load(queue=3, slots=8, seq=5))
    b.on_frames(1.0, W1, encode(res))
    assert b.table.workers[W1].load.seq == 5
    [delta] = messages_to(b.on_tick(1.0 + TIMING.push_delay), SUB, Workers)
    assert delta.workers[0].queue == 3


def test_a_heartbeat_from_an_unknown_peer_gets_an_unknown_peer_error():
    b = core()
    [(peer, msg, _)] = decoded(b.on_frames(0.0, W1, encode(Heartbeat(load=load()))))
    assert peer == W1 and isinstance(msg, Error) and msg.code == "unknown-peer"
    assert b.table.role(W1) is None


def test_the_broker_heartbeats_every_peer_once_per_interval():
    b = core()
    ready(b, W1, 0.0)
    ready(b, W2, 0.0)
    hello(b, SUB, 0.0)       # the table answer counts as something sent to SUB at t=0, as
    first = decoded(b.on_tick(0.5))   # the welcome of each READY does to its worker
    assert {p for p, m, _ in first if isinstance(m, Heartbeat)} == set()
    assert {p for p, m, _ in first if isinstance(m, Workers)} == {SUB}   # the join delta
    assert {p for p, m, _ in decoded(b.on_tick(1.2))} == {W1, W2}
    assert b.on_tick(1.3) == []
    assert {p for p, m, _ in decoded(b.on_tick(1.5)) if isinstance(m, Heartbeat)} == {SUB}
