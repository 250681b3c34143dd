"""Tests of what the broker knows for a status (broker/flight.py, meter.py, snapshot.py, metrics.py).

No sockets: frames go into a BrokerCore with a fake `now`; STATUS replies come out.
"""

import re

import pytest

from broker.core import BrokerCore
from broker.dashboard import is_loopback, parse_http_addr
from broker.flight import Flight
from broker.metrics import render_metrics
from broker.snapshot import build_status
from protocol import (
    Bye, Cancel, Heartbeat, Hello, Job, Load, Ready, Result, Status, StatusReply, decode, encode,
)
from protocol.status import EXCERPT, MAX_STATUS_WORKERS
from protocol.timing import Timing

TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
W1, W2, SUB, SUB2, ASKER = "57aa01", "57bb02", "53cc03", "53dd04", "51ee05"


def ready(b, peer, now, name, running=0, queue=0, draining=False, seen=()):
    load = Load(queue=queue, running=running, slots=2, seq=int(now * 1000) + 1, draining=draining, seen=seen)
    b.on_frames(now, peer, encode(Ready(name=name, host="host-" + name, version="0.1.0", load=load)))


def cluster(now=0.0):
    b = BrokerCore(TIMING, now)
    ready(b, W1, now, "w1")
    ready(b, W2, now, "w2")
    b.on_frames(now, SUB, encode(Hello(version="0.1.0", name="laptop:42")))
    return b


def job(b, now, n, worker=W1, command="sleep 5", sub=SUB):
    return b.on_frames(now, sub, encode(Job(job=n, worker=worker, command=command)))


def result(b, now, n, worker=W1, code=0, status="exited", sub=SUB, error=""):
    b.on_frames(now, worker, encode(Result(job=n, client=sub, status=status, code=code,
                                           elapsed=0.5, error=error)))


def status(b, now) -> StatusReply:
    """Ask as a stranger would, and decode the reply off the wire."""
    (send,) = b.on_frames(now, ASKER, encode(Status()))
    assert send.peer == ASKER
    msg, _ = decode(send.frames)
    return msg


def test_a_forwarded_job_is_in_flight_until_its_result_arrives():
    b = cluster()
    job(b, 1.0, 7, command="cc -c x.c")
    (a,) = status(b, 3.5).flight
    assert (a.job, a.client, a.submitter, a.worker, a.worker_name) == (7, SUB, "laptop:42", W1, "w1")
    assert (a.command, a.age) == ("cc -c x.c", 2.5)
    result(b, 4.0, 7, code=3)
    s = status(b, 5.0)
    assert s.flight == () and s.flight_total == 0
    (r,) = s.recent
    assert (r.job, r.worker_name, r.status, r.code, r.command, r.elapsed, r.ago) == (7, "w1", "exited", 3, "cc -c x.c", 0.5, 1.0)


def test_a_result_from_any_peer_but_the_jobs_worker_leaves_it_in_flight():
    b = cluster()
    job(b, 1.0, 7)
    result(b, 2.0, 7, worker=W2)              # a forged (or stale) RESULT from another worker
    result(b, 2.0, 7, worker="7777")          # or from a peer that never registered
    assert [f.job for f in status(b, 2.5).flight] == [7]
    result(b, 3.0, 7)
    assert status(b, 3.5).flight == ()


def test_recent_results_come_newest_first_and_carry_the_error_text():
    b = cluster()
    for n in (1, 2):
        job(b, 0.0, n)
    result(b, 1.0, 1)
    result(b, 2.0, 2, status="error", error="could not fetch an input")
    assert [(r.job, r.error) for r in status(b, 2.0).recent] == [(2, "could not fetch an input"), (1, "")]


def test_a_worker_that_leaves_takes_its_jobs_out_of_flight():
    b = cluster()
    job(b, 0.0, 1, worker=W1)
    job(b, 0.0, 2, worker=W2)
    b.on_frames(0.5, W1, encode(Bye(reason="stopping")))
    assert [a.job for a in status(b, 1.0).flight] == [2]


def test_a_silent_worker_expiring_takes_its_jobs_out_of_flight():
    b = cluster()
    job(b, 0.0, 1, worker=W1)
    b.on_frames(3.0, W2, encode(Heartbeat()))
    b.on_frames(3.0, SUB, encode(Heartbeat()))
    b.on_tick(3.5)   # W1 silent for more than the 3 s window
    assert status(b, 3.5).flight == ()


def test_a_submitter_that_leaves_takes_its_jobs_out_of_flight():
    b = cluster()
    b.on_frames(0.0, SUB2, encode(Hello(version="0.1.0", name="other:1")))
    job(b, 0.0, 1, sub=SUB)
    job(b, 0.0, 1, sub=SUB2)
    b.on_frames(0.5, SUB, encode(Bye(reason="run over")))
    assert [(a.client, a.job) for a in status(b, 1.0).flight] == [(SUB2, 1)]


def test_cancel_with_kill_forgets_the_job_but_cancel_without_kill_keeps_it_running():
    b = cluster()
    job(b, 0.0, 1)
    job(b, 0.0, 2)
    b.on_frames(0.5, SUB, encode(Cancel(job=1, worker=W1, kill=False)))
    b.on_frames(0.5, SUB, encode(Cancel(job=2, worker=W1, kill=True)))
    assert [a.job for a in status(b, 1.0).flight] == [1]


def test_a_result_for_a_departed_submitter_is_dropped_and_leaves_flight():
    b = cluster()
    job(b, 0.0, 1)
    assert (SUB, 1) in b.flight.jobs
    b.table.submitters.pop(SUB)   # gone without the broker's drop path (e.g. a restart)
    result(b, 1.0, 1)
    assert (SUB, 1) not in b.flight.jobs and b.stats["results_dropped"] == 1


def test_a_full_flight_table_drops_its_oldest_tenth_and_counts_them():
    f = Flight(limit=20)
    for n in range(25):
        f.sent(float(n), SUB, Job(job=n, worker=W1, command="true"))
    assert f.dropped == 6 and len(f.jobs) == 19
    assert min(job for _, job in f.jobs) == 6


def test_recent_results_keep_only_the_last_fifty():
    b = cluster()
    for n in range(60):
        job(b, 0.0, n)
        result(b, 0.1, n)
    s = status(b, 1.0)
    assert len(s.recent) == 50 and s.recent[0].job == 59 and s.recent[-1].job == 10


def test_a_long_command_is_kept_as_a_short_excerpt():
    b = cluster()
    job(b, 0.0, 1, command="x" * 5000)
    (a,) = status(b, 0.0).flight
    assert len(a.command) == EXCERPT and a.command.endswith("…")


def test_the_oldest_jobs_of_a_worker_up_to_its_running_count_show_as_running():
    b = cluster()
    for n in (1, 2, 3):
        job(b, float(n), n, worker=W1)
    ready(b, W1, 4.0, "w1", running=2, queue=3, seen=((SUB, 3),))   # it holds all three
    assert [(a.job, a.state) for a in status(b, 4.0).flight] == [(1, "running"), (2, "running"), (3, "queued")]


def test_worker_rows_say_ok_late_or_draining_and_how_long_ago_they_were_heard():
    b = cluster()
    ready(b, W2, 0.5, "w2", draining=True)
    rows = {w.name: w for w in status(b, 1.4).workers}
    assert (rows["w1"].state, rows["w1"].heard) == ("ok", 1.4)
    assert rows["w2"].state == "draining" and rows["w2"].draining
    assert {w.name: w.state for w in status(b, 1.6).workers}["w1"] == "late"


def test_a_status_query_registers_nobody_and_is_owed_no_heartbeat():
    b = cluster()
    status(b, 0.5)
    assert b.table.role(ASKER) is None
    sent = b.on_tick(1.2)
    assert ASKER not in {s.peer for s in sent}
    assert status(b, 1.5).workers_total == 2 and status(b, 1.5).submitters_total == 1


def test_counters_count_messages_by_type_and_direction_and_bytes():
    b = cluster()
    frames = encode(Job(job=1, worker=W1, command="true"))
    b.on_frames(1.0, SUB, frames)
    counters = dict(status(b, 1.0).counters)
    assert counters["in.JOB"] == 1 and counters["out.JOB"] == 1
    assert counters["in.READY"] == 2 and counters["out.WORKERS"] == 1 and counters["in.STATUS"] == 1
    assert counters["jobs"] == 1 and counters["in_flight"] == 1
    assert counters["bytes_in"] > sum(len(f) for f in frames) and counters["bytes_out"] > 0


def test_a_status_of_more_workers_than_the_cap_lists_the_cap_and_counts_them_all():
    b = BrokerCore(TIMING, 0.0)
    for n in range(MAX_STATUS_WORKERS + 20):
        ready(b, f"57{n:06x}", 0.0, f"worker-{n:04d}-" + "é" * 60)
    s = status(b, 0.0)   # went through encode, so it fits the header limit
    assert len(s.workers) == MAX_STATUS_WORKERS and s.workers_total == MAX_STATUS_WORKERS + 20


def test_metrics_are_prometheus_text_with_help_and_type_for_every_family():
    b = cluster()
    ready(b, W2, 0.0, 'w"2\\', running=1, queue=2)
    job(b, 0.0, 1)
    text = render_metrics(build_status(b, 1.0))
    assert text.endswith("\n")
    families = re.findall(r"^# TYPE (\w+) (gauge|counter)$", text, re.M)
    assert {"rake_workers", "rake_worker_queue", "rake_actions_in_flight", "rake_results_total",
            "rake_messages_total"} <= {name for name, _ in families}
    assert all(re.search(rf"^# HELP {name} .+$", text, re.M) for name, _ in families)
    sample = re.compile(r'^[a-z_]+(\{([a-z]+="([^"\\\n]|\\.)*",?)+\})? -?[0-9.e+]+$')
    assert all(sample.match(line) for line in text.splitlines() if not line.startswith("#")), text
    assert "rake_workers 2" in text and "rake_actions_in_flight 1" in text
    assert f'rake_worker_queue{{worker="w\\"2\\\\",id="{W2}"}} 2' in text
    assert 'rake_messages_total{direction="in",type="JOB"} 1' in text


def test_a_snapshot_is_frozen_so_the_http_thread_can_read_it_while_the_broker_moves_on():
    b = cluster()
    job(b, 0.0, 1)
    snap = build_status(b, 1.0)
    result(b, 2.0, 1)
    assert snap.flight_total == 1 and isinstance(snap.workers, tuple)
    with pytest.raises(AttributeError):
        snap.flight_total = 0


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), (":0", ("127.0.0.1", 0)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:9", ("::1", 9)), ("localhost:8080", ("localhost", 8080)),
])
def test_http_addresses_parse_with_loopback_as_the_default_host(text, expected):
    assert parse_http_addr(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:http", "1:2:3", "127.0.0.1:70000"])
def test_bad_http_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_http_addr(text)


def test_only_loopback_addresses_count_as_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_a_bracketed_ipv6_address_without_a_port_is_told_it_needs_one():
    with pytest.raises(ValueError, match=r"needs a port after the address, e.g. \[::1\]:8080"):
        parse_http_addr("[::1]")


def test_a_recent_result_is_remembered_without_its_outputs():
    # One RESULT of 100,000 outputs, kept among the 50 recent ones, held hundreds of MB.
    from protocol import FileRef, Result
    from broker.flight import Flight
    flight = Flight()
    outputs = tuple(FileRef(path=f"o/{i}", mode=0o644, digest="0" * 64) for i in range(1000))
    msg = Result(job=3, client="c" * 16, status="exited", code=2, outputs=outputs, error="e", elapsed=1.5)
    flight.ended(1.0, "w" * 16, msg)
    (entry,) = flight.recent
    assert msg not in entry and outputs not in entry[2]
    assert entry[2] == (3, "c" * 16, "exited", 2, 1.5, "e")
