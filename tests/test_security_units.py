"""Unit tests of the network-security pieces: bind check, rate limiter, role table, key files,
and the broker core enforcing roles and revocation (no sockets, fake clock)."""

from __future__ import annotations

import os

import pytest

from broker.bind import is_local_endpoint
from broker.core import BrokerCore
from broker.ratelimit import RateLimiter
from broker.roles import ALLOWED, SUBMITTER, WORKER, User, may_send, parse_user
from protocol import (
    Ack, Cancel, Error, Heartbeat, Hello, Job, Load, Ready, Result, Workers, decode, encode,
)
from protocol.codec import MAX_FRAME
from protocol.errors import DecodeError, EncodeError
from protocol.messages import MESSAGE_TYPES
from protocol.timing import Timing
from rakeauth.client import client_curve
from rakeauth.keys import KeyFileError, make_keypair, read_keys, read_secret

TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
W1, SUB = "57aa01", "53cc03"
WUSER = User(WORKER, "f" * 16, "w1").encode()
SUSER = User(SUBMITTER, "e" * 16, "alice").encode()


def no_dns(host, port):
    raise OSError("no resolver in unit tests")


# ---- binding -----------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", [
    "tcp://127.0.0.1:6238", "tcp://127.0.0.1:*", "tcp://127.9.8.7:1", "tcp://[::1]:6238",
    "inproc://rake", "ipc:///tmp/rake.sock",
])
def test_loopback_and_local_transports_count_as_local(endpoint):
    assert is_local_endpoint(endpoint, resolve=no_dns)


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:6238", "tcp://*:6238", "tcp://*:*", "tcp://[::]:6238", "tcp://10.0.0.1:6238",
    "tcp://eth0:6238", "tcp://unknown.invalid:6238", "pgm://eth0;239.192.1.1:5555", "6238", "",
])
def test_anything_not_provably_loopback_counts_as_network(endpoint):
    assert not is_local_endpoint(endpoint, resolve=no_dns)


def test_a_host_name_is_local_only_if_every_address_is_loopback():
    mixed = lambda h, p: [(2, 1, 6, "", ("127.0.0.1", 0)), (2, 1, 6, "", ("192.0.2.7", 0))]  # noqa: E731
    only_lo = lambda h, p: [(2, 1, 6, "", ("127.0.1.1", 0)), (10, 1, 6, "", ("::1", 0, 0, 0))]  # noqa: E731
    assert not is_local_endpoint("tcp://buildhost:6238", resolve=mixed)
    assert is_local_endpoint("tcp://localhost:6238", resolve=only_lo)


# ---- rate limiter ------------------------------------------------------------------------
def test_a_peer_gets_its_burst_then_the_rate():
    r = RateLimiter(rate=10, burst=5)
    assert [r.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert r.allow("a", 0.1) and not r.allow("a", 0.1)      # 0.1 s at 10/s: one more
    assert [r.allow("a", 10.0) for _ in range(6)] == [True] * 5 + [False]   # never above the burst


def test_one_peer_flooding_leaves_others_their_own_bucket():
    r = RateLimiter(rate=1, burst=3)
    flooded = sum(r.allow("flooder", 0.0) for _ in range(10_000))
    assert flooded == 3
    assert all(r.allow("worker", 0.0) for _ in range(3))


def test_refilled_buckets_are_forgotten_so_memory_stays_bounded():
    r = RateLimiter(rate=100, burst=10)
    for i in range(1000):
        r.allow(f"peer{i}", 0.0)
    r.allow("late", 1.0)     # 1 s later every bucket has refilled and is pruned
    assert set(r.buckets) == {"late"}


def test_a_rate_limit_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=10)


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


# ---- key files and client options ------------------------------------------------------------
def test_keygen_writes_a_public_file_and_a_private_secret_file(tmp_path):
    public, secret = make_keypair(str(tmp_path), "alice")
    assert os.stat(secret).st_mode & 0o777 == 0o600
    pub, none = read_keys(public)
    assert none is None and read_secret(secret)[0] == pub
    with pytest.raises(KeyFileError, match="already exists"):
        make_keypair(str(tmp_path), "alice")


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 65])
def test_keygen_refuses_a_name_that_is_not_a_plain_word(tmp_path, name):
    with pytest.raises(KeyFileError):
        make_keypair(str(tmp_path), name)


def test_rake_keygen_refuses_a_bad_name_before_making_its_directory(tmp_path):
    import subprocess
    from tests.procs import command, rake_env
    res = subprocess.run(command("rake-keygen") + [str(tmp_path / "new"), ".hidden"], env=rake_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "not starting with '.'" in res.stderr, res.stderr
    assert not (tmp_path / "new").exists()


def test_a_malformed_key_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text('public-key = "short"\n')
    with pytest.raises(KeyFileError, match="bad.key"):
        read_keys(str(bad))
    public, _ = make_keypair(str(tmp_path), "pub")
    with pytest.raises(KeyFileError, match="no secret key"):
        read_secret(public)


def test_client_keys_come_from_flags_or_environment_and_both_are_needed(tmp_path):
    public, secret = make_keypair(str(tmp_path), "w1")
    assert client_curve(None, None, env={}) is None
    env = {"RAKE_CURVE_KEY": secret, "RAKE_SERVER_KEY": public}
    assert client_curve(None, None, env=env).server == read_keys(public)[0]
    with pytest.raises(KeyFileError, match="--server-key"):
        client_curve(secret, None, env={})


def test_a_key_whose_z85_overflows_is_refused_not_a_crash(tmp_path):
    bad = tmp_path / "overflow.key"
    bad.write_text('public-key = "' + "#" * 40 + '"\n')   # each group decodes past 2**32
    with pytest.raises(KeyFileError, match="overflow.key"):
        read_keys(str(bad))


def test_a_dangling_link_in_a_key_directory_skips_only_that_entry(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    make_keypair(str(subs), "alice")
    os.symlink(tmp_path / "nowhere.key", subs / "bob.key")
    ring = KeyRing(str(subs), str(workers), log=lambda s: None)
    assert [u.name for u in ring.current.values()] == ["alice"]


@pytest.mark.timeout(10)
def test_a_fifo_named_like_a_key_is_skipped_without_hanging_the_broker(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    make_keypair(str(subs), "alice")
    os.mkfifo(workers / "oops.key")   # nobody will ever write to it
    lines = []
    ring = KeyRing(str(subs), str(workers), log=lines.append)
    assert [u.name for u in ring.current.values()] == ["alice"]
    assert any("oops.key" in line and "not a regular file" in line for line in lines), lines


def test_a_key_directory_problem_is_logged_when_it_starts_not_at_every_refresh(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    lines = []
    ring = KeyRing(str(subs), str(workers), log=lines.append)
    workers.rmdir()
    for _ in range(5):
        ring.refresh()
    assert sum("cannot read --worker-keys" in line for line in lines) == 1
    workers.mkdir()
    ring.refresh()
    workers.rmdir()
    ring.refresh()
    assert sum("cannot read --worker-keys" in line for line in lines) == 2   # gone again: said again


def test_a_key_named_on_the_command_line_may_come_from_a_pipe(tmp_path):
    make_keypair(str(tmp_path), "alice")
    text = (tmp_path / "alice.key_secret").read_bytes()
    r, w = os.pipe()
    os.write(w, text)
    os.close(w)
    try:
        public, secret = read_keys(f"/dev/fd/{r}")   # as `--curve-key <(vault read ...)` gives
    finally:
        os.close(r)
    assert secret is not None and len(public) == 40
