"""Finding a broker: try the candidates, pick the first listed one that answers, in bounded time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq

from protocol import DecodeError, Hello, Workers, decode, encode
from protocol.version import VERSION
from worker.loop import make_dealer


class NoBroker(Exception):
    """No candidate broker answered in time."""


@dataclass
class Candidate:
    endpoint: str
    label: str                  # where it came from, for messages: "--broker", "HOSTS", ...
    sock: zmq.Socket | None = None
    monitor: zmq.Socket | None = None
    answer: Workers | None = None
    dead: str | None = None     # why we gave up on it


def find_broker(ctx: zmq.Context, candidates: list[Candidate], identity: bytes, timeout: float,
                name: str, warn) -> tuple[zmq.Socket, Candidate]:
    """Connect to every candidate at once; the first in list order that answers HELLO wins.

    A candidate that refuses the connection is passed over as soon as a later one answers, so
    an early dead entry costs nothing; a silent one costs at most `timeout`.
    """
    hello = encode(Hello(version=VERSION, name=name))
    for c in candidates:
        c.sock = make_dealer(ctx, c.endpoint, identity)
        c.monitor = c.sock.get_monitor_socket(zmq.EVENT_CONNECT_RETRIED)
        c.sock.send_multipart(hello)
    try:
        chosen = _await_answers(candidates, time.monotonic() + timeout)
    finally:
        for c in candidates:
            c.sock.disable_monitor()
            c.monitor.close(linger=0)
    for c in candidates:
        if c is not chosen:
            c.sock.close(linger=0)
    for c in candidates[: candidates.index(chosen) if chosen else len(candidates)]:
        warn(f"skipping broker {c.endpoint} (from {c.label}): {c.dead or 'no answer'}")
    if chosen is None:
        raise NoBroker(", ".join(c.endpoint for c in candidates))
    return chosen.sock, chosen


def _await_answers(candidates: list[Candidate], deadline: float) -> Candidate | None:
    poller = zmq.Poller()
    for c in candidates:
        poller.register(c.sock, zmq.POLLIN)
        poller.register(c.monitor, zmq.POLLIN)
    while True:
        for c in candidates:
            if c.answer is not None:
                return c
            if c.dead is None:
                break   # an earlier candidate may still answer: wait for it
        # Refused ones stay in the race: a broker that is just starting may still answer.
        left = deadline - time.monotonic()
        if left <= 0:
            for c in candidates:
                c.dead = c.dead or "no answer in time"
            return None
        events = dict(poller.poll(left * 1000 + 1))
        for c in candidates:
            if c.monitor in events:
                c.monitor.recv_multipart()   # the event itself: which one does not matter
                c.dead = c.dead or "connection refused"
            if c.sock in events:
                _take_answer(c)


def _take_answer(c: Candidate) -> None:
    try:
        msg, _ = decode(c.sock.recv_multipart(zmq.NOBLOCK))
    except (zmq.Again, DecodeError):
        return
    if isinstance(msg, Workers):
        c.answer, c.dead = msg, None
