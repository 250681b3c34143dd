"""Which binds count as local (broker/bind.py), and the per-peer rate limiter (broker/ratelimit.py)."""

from __future__ import annotations

import pytest

from broker.bind import is_local_endpoint
from broker.ratelimit import RateLimiter


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
