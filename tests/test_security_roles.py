"""Who may send what: the role table, the broker core with authenticated peers, the frame limit."""

from __future__ import annotations

import pytest

from broker.core import BrokerCore
from broker.ratelimit import RateLimiter
from broker.roles import ALLOWED, SUBMITTER, WORKER, User, may_send, parse_user
from protocol import (
    Ack, Bye, Cancel, Error, Heartbeat, Hello, Job, Load, Ready, Result, Workers, decode, encode,
)
from protocol.codec import MAX_FRAME
from protocol.errors import DecodeError, EncodeError
from protocol.messages import MESSAGE_TYPES
from protocol.timing import Timing


TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
W1, SUB = "57aa01", "53cc03"
WUSER = User(WORKER, "f" * 16, "w1").encode()
SUSER = User(SUBMITTER, "e" * 16, "alice").encode()


# ---- role table ---------------------------------------------------------------------------
def test_every_message_type_has_a_row_in_the_role_table():
    assert set(ALLOWED) == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("kind,worker,submitter", [
    (Hello, False, True), (Job, False, True), (Ack, False, True), (Cancel, False, True),
    (Ready, True, False), (Result, True, False), (Heartbeat, True, True),
])
def test_the_role_table_says_who_may_send_what(kind, worker, submitter):
    assert may_send(parse_user(WUSER), kind) is worker
    assert may_send(parse_user(SUSER), kind) is submitter


@pytest.mark.parametrize("user_id", [None, "", "anonymous", "admin:x:y", "worker", "worker:only"])
def test_a_user_id_without_a_role_may_send_nothing(user_id):
    assert parse_user(user_id) is None
    assert not may_send(parse_user(user_id), Heartbeat)


def test_a_key_name_may_contain_colons():
    assert parse_user("submitter:abcd:a:b") == User(SUBMITTER, "abcd", "a:b")


# ---- the broker core with authenticated peers ----------------------------------------------
def load(seq=1):
    return Load(queue=0, running=0, slots=2, seq=seq)


def auth_core(limiter=None):
    return BrokerCore(TIMING, 0.0, limiter=limiter, allowed_users={WUSER, SUSER})


def ready_msg():
    return encode(Ready(name="w1", host="h", version="1", load=load()))


def replies(sends, peer):
    return [decode(s.frames)[0] for s in sends if s.peer == peer]


def test_worker_key_cannot_submit():
    b = auth_core()
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    out = b.on_frames(0.1, "57ee05", encode(Job(job=1, worker=W1, command="id")), WUSER)
    [err] = replies(out, "57ee05")
    assert isinstance(err, Error) and "worker key may not send JOB" in err.message and err.job == 1
    assert not [s for s in out if s.peer == W1]       # nothing reached the worker
    assert b.stats["forbidden"] == 1


def test_submitter_key_cannot_register_a_worker():
    b = auth_core()
    out = b.on_frames(0.0, W1, ready_msg(), SUSER)
    assert isinstance(replies(out, W1)[0], Error)
    assert W1 not in b.table.workers


def test_submitter_key_cannot_send_a_result():
    b = auth_core()
    b.on_frames(0.0, SUB, encode(Hello(version="1")), SUSER)
    res = Result(job=1, client=SUB, status="exited", stdout=None, stderr=None)
    out = b.on_frames(0.1, "53ff06", encode(res), SUSER)
    assert [type(m) for m in replies(out, SUB)] == []
    assert isinstance(replies(out, "53ff06")[0], Error)


def test_the_right_keys_register_and_route():
    b = auth_core()
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    [table] = replies(b.on_frames(0.0, SUB, encode(Hello(version="1")), SUSER), SUB)
    assert isinstance(table, Workers) and [w.id for w in table.workers] == [W1]
    out = b.on_frames(0.1, SUB, encode(Job(job=1, worker=W1, command="id")), SUSER)
    assert [type(m) for m in replies(out, W1)] == [Job]
    assert b.table.workers[W1].user == WUSER and b.table.submitters[SUB].user == SUSER


def test_an_unknown_or_missing_user_is_ignored_without_a_reply():
    b = auth_core()
    assert b.on_frames(0.0, SUB, encode(Hello(version="1")), None) == []
    assert b.on_frames(0.0, SUB, encode(Hello(version="1")), "submitter:0:mallory") == []
    assert b.stats["unauthorized"] == 2 and not b.table.submitters


def test_a_revoked_worker_is_forgotten_and_then_ignored():
    b = auth_core()
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    b.on_frames(0.0, SUB, encode(Hello(version="1")), SUSER)
    b.on_tick(0.1)
    b.revoke(0.2, {SUSER})
    assert W1 not in b.table.workers
    pushed = [m for m in replies(b.on_tick(0.3), SUB) if isinstance(m, Workers)]
    assert pushed and pushed[0].gone == (W1,)
    assert b.on_frames(0.4, W1, ready_msg(), WUSER) == []
    assert W1 not in b.table.workers


def test_a_routing_id_taken_over_by_another_key_is_dropped():
    other = User(WORKER, "0" * 16, "w2").encode()
    b = BrokerCore(TIMING, 0.0, allowed_users={WUSER, SUSER, other})
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    out = b.on_frames(0.1, W1, encode(Heartbeat(load=load(2))), other)
    assert W1 not in b.table.workers
    assert isinstance(replies(out, W1)[-1], Error)


def test_excess_messages_are_dropped_unread_and_counted():
    b = auth_core(RateLimiter(rate=1, burst=2))
    for _ in range(2):
        b.on_frames(0.0, SUB, encode(Hello(version="1")), SUSER)
    assert b.on_frames(0.0, SUB, [b"garbage"], SUSER) == []        # not even decoded
    assert b.stats["rate_limited"] == 1 and b.stats["rejected"] == 0
    [welcome] = replies(b.on_frames(0.0, W1, ready_msg(), WUSER), W1)   # the worker's bucket is its own
    assert welcome.welcome
    assert W1 in b.table.workers


def test_without_keys_the_core_keeps_its_open_behaviour():
    b = BrokerCore(TIMING, 0.0)
    b.on_frames(0.0, W1, ready_msg())
    out = b.on_frames(0.0, SUB, encode(Job(job=1, worker=W1, command="id")))
    assert [type(m) for m in replies(out, W1)] == [Job]


# ---- frame limit --------------------------------------------------------------------------
def test_a_blob_over_the_frame_limit_is_never_sent_nor_accepted():
    huge = bytearray(MAX_FRAME + 1)
    res = Result(job=1, client=SUB, status="exited", stdout=0, stderr=None)
    with pytest.raises(EncodeError, match="frame limit"):
        encode(res, [huge])
    frames = encode(res, [b"x"])
    with pytest.raises(DecodeError, match="frame limit"):
        decode([*frames[:2], huge])


def test_a_key_listed_under_a_new_or_second_name_is_the_same_key_and_its_peer_stays():
    b = auth_core()
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    renamed = WUSER.rsplit(":", 1)[0] + ":w1-renamed"
    assert b.revoke(0.1, {renamed, SUSER}) == [] and W1 in b.table.workers
    b.on_frames(0.2, W1, encode(Heartbeat(load=load(2))), WUSER)   # its connection keeps the old name
    assert b.stats["unauthorized"] == 0 and W1 in b.table.workers
    b.on_frames(0.3, W1, encode(Heartbeat(load=load(2))), renamed)   # and a new one the new name
    assert W1 in b.table.workers and b.stats["forbidden"] == 0


def test_under_curve_a_status_shows_a_submitter_key_only_its_own_submitters_and_jobs():
    from protocol import Status
    bob, BOB, ASKER = User(SUBMITTER, "d" * 16, "bob").encode(), "42bb02", "5a5a05"
    b = BrokerCore(TIMING, 0.0, allowed_users={WUSER, SUSER, bob})
    b.on_frames(0.0, W1, ready_msg(), WUSER)
    b.on_frames(0.0, SUB, encode(Hello(version="1")), SUSER)
    b.on_frames(0.0, BOB, encode(Hello(version="1")), bob)
    b.on_frames(0.1, BOB, encode(Job(job=1, worker=W1, command="curl -H 'token: bob-secret'")), bob)
    b.on_frames(0.1, SUB, encode(Job(job=1, worker=W1, command="make alice")), SUSER)
    b.on_frames(0.15, W1, encode(Heartbeat(load=Load(queue=2, running=1, slots=2, seq=2))), WUSER)
    # alice's rake-status is a connection of its own, with alice's key
    [reply] = replies(b.on_frames(0.2, ASKER, encode(Status()), SUSER), ASKER)
    assert [f.command for f in reply.flight] == ["make alice"] and reply.flight_total == 1
    assert [s.id for s in reply.submitters] == [SUB]
    assert reply.flight[0].state == "queued"   # bob's job, older, holds the first slot all the same
    b.on_frames(0.3, W1, encode(Result(job=1, client=BOB, status="exited")), WUSER)
    b.on_frames(0.3, W1, encode(Result(job=1, client=SUB, status="exited")), WUSER)
    b.on_frames(0.35, SUB, encode(Bye(reason="done")), SUSER)   # alice's run is over
    [reply] = replies(b.on_frames(0.4, ASKER, encode(Status()), SUSER), ASKER)
    assert [(r.client, r.command) for r in reply.recent] == [(SUB, "make alice")]   # hers, not bob's
