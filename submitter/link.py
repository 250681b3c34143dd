"""Finding a broker: try the candidates, pick the first listed one that answers, in bounded time."""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

import zmq

from protocol import DecodeError, Error, Hello, Workers, decode, encode
from protocol.paths import printable
from protocol.version import VERSION
from rakeauth.client import ClientCurve
from rake_common.dealer import make_dealer
from submitter.interrupts import drain_signal_wake, signal_wake

# Connection refused, and (with CURVE) the broker refusing our key or failing the handshake.
WATCHED = (zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class NoBroker(Exception):
    """No candidate broker answered in time; `refused`: each one that answered refused us."""

    def __init__(self, tried: str, refused: bool = False):
        super().__init__(tried)
        self.refused = refused


@dataclass
class Candidate:
    endpoint: str
    label: str                  # where it came from, for messages: "--broker", "HOSTS", ...
    sock: zmq.Socket | None = None
    monitor: zmq.Socket | None = None
    answer: object | None = None   # the first reply of an expected type (WORKERS for HELLO)
    dead: str | None = None     # why we gave up on it
    refused: bool = False       # it answered, with an ERROR (our key, our heartbeat)
    identity: bytes = b""       # ours on its connection; the session keeps the chosen one's


def find_broker(ctx: zmq.Context, candidates: list[Candidate], identity: bytes, timeout: float,
                name: str, warn, curve: ClientCurve | None = None, greeting=None,
                answers: tuple = (Workers,), heartbeat: float = 0.0) -> tuple[zmq.Socket, Candidate]:
    """Connect to every candidate at once; the first in list order that answers HELLO wins.

    A candidate that refuses the connection is passed over as soon as a later one answers, so
    an early dead entry costs nothing; a silent one costs at most `timeout`. rake-status sends
    a STATUS `greeting` instead and takes a STATUS-REPLY as the answer. Each connection has
    its own identity (the first gets `identity`): two entries naming one broker would
    otherwise be one peer to it, and each answer would go to whichever connected last.
    """
    hello = encode(greeting or Hello(version=VERSION, name=name, heartbeat=heartbeat))
    for i, c in enumerate(candidates):
        c.identity = identity if i == 0 else identity[:1] + os.urandom(len(identity) - 1)
        c.sock = make_dealer(ctx, c.endpoint, c.identity, curve)
        c.monitor = c.sock.get_monitor_socket(WATCHED)
        c.sock.send_multipart(hello)
    try:
        chosen = _await_answers(candidates, time.monotonic() + timeout, curve is not None, answers)
    finally:
        for c in candidates:
            c.sock.disable_monitor()
            c.monitor.close(linger=0)
    for c in candidates:
        if c is not chosen:
            c.sock.close(linger=0)
    for c in candidates[: candidates.index(chosen) if chosen else len(candidates)]:
        why = "no worker has joined it" if c.answer is not None else c.dead or "no answer"
        warn(f"skipping broker {c.endpoint} (from {c.label}): {why}")
    if chosen is None:
        raise NoBroker(", ".join(c.endpoint for c in candidates), all(c.refused for c in candidates))
    return chosen.sock, chosen


def _event(frames: list[bytes]) -> int:
    """The event number of a monitor message (frame 0: uint16 event, uint32 value, native order)."""
    return struct.unpack("=H", frames[0][:2])[0]


def _why(event: int, curve_on: bool, endpoint: str = "") -> str:
    if event == zmq.EVENT_CONNECT_RETRIED and endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return f"cannot connect: permission denied on {path}"
        return "cannot connect (no broker listens there)"
    if event == zmq.EVENT_CONNECT_RETRIED:
        return "cannot connect (connection refused, or no such host)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "the broker refused our key (is its public key in the broker's --submitter-keys?)"
    if curve_on:
        return "CURVE handshake failed (is --server-key the broker's public key, and does it use CURVE?)"
    return ("handshake failed: not a rake broker, or one that requires CURVE keys "
            "(then give --curve-key and --server-key)")


def _await_answers(candidates: list[Candidate], deadline: float, curve_on: bool,
                   answers: tuple) -> Candidate | None:
    poller = zmq.Poller()
    for c in candidates:
        poller.register(c.sock, zmq.POLLIN)
        poller.register(c.monitor, zmq.POLLIN)
    if signal_wake() is not None:   # an interrupt a helper thread took ends this wait too
        poller.register(signal_wake(), zmq.POLLIN)
    while True:
        chosen = _first_answer(candidates)
        if chosen is not None:
            return chosen
        # Refused ones stay in the race: a broker that is just starting may still answer.
        left = deadline - time.monotonic()
        if left <= 0:   # those still silent are given up on; of the rest, as above
            for c in candidates:
                c.dead = c.dead or ("no answer in time" if c.answer is None else None)
            return _first_answer(candidates)
        events = dict(poller.poll(left * 1000 + 1))
        if signal_wake() in events:
            drain_signal_wake()
        for c in candidates:
            if c.monitor in events:
                event = _event(c.monitor.recv_multipart())
                c.dead = c.dead or _why(event, curve_on, c.endpoint)
                c.refused = c.refused or event != zmq.EVENT_CONNECT_RETRIED   # a handshake it failed
            if c.sock in events and c.answer is None:
                _take_answer(c, answers)
                if c.answer is not None:   # what follows (more of its table, deltas) is the session's
                    poller.unregister(c.sock)


def _empty(c: Candidate) -> bool:
    """It answered with a worker table that has no worker in it."""
    return isinstance(c.answer, Workers) and not c.answer.workers and not c.answer.more


def _first_answer(candidates: list[Candidate]) -> Candidate | None:
    """The first in list order that answered with a worker, once every one before it is dead or
    answered with none; else, when none is left to wait for, the first that answered at all
    (its workers may still join). None while an earlier candidate may still answer."""
    for c in candidates:
        if c.answer is not None and not _empty(c):
            return c
        if c.answer is None and c.dead is None:
            return None   # an earlier candidate may still answer: wait for it
    return next((c for c in candidates if c.answer is not None), None)


def _take_answer(c: Candidate, answers: tuple) -> None:
    try:
        msg, _ = decode(c.sock.recv_multipart(zmq.NOBLOCK))
    except (zmq.Again, DecodeError):
        return
    if isinstance(msg, answers):
        c.answer, c.dead = msg, None
    elif isinstance(msg, Error):   # e.g. our key's role may not submit
        c.dead, c.refused = f"the broker answered {msg.code}: {printable(msg.message)}", True


def how_to_start(first: Candidate) -> str:
    """The advice when no broker answered: start one where the first candidate points (its
    port may not be the default 6238), or drop the setting that named it."""
    where = first.endpoint
    host, _, port = where[len("tcp://"):].rpartition(":")
    if not where.startswith("tcp://"):
        start = f"start one with 'rake-broker --bind {where}'"
    elif host in ("localhost", "127.0.0.1", "[::1]"):   # here: its own default, or that port
        start = "start one with 'rake-broker" + ("'" if where.endswith("127.0.0.1:6238") else
                                                 f" --bind tcp://{host.replace('localhost', '127.0.0.1')}:{port}'")
    else:
        start = f"start one on {host}, port {port}"
    source = first.label
    unset = ("drop HOSTS" if source.startswith("HOSTS") else f"drop {source}" if source.startswith("-")
             else f"unset {source}" if source.isupper() else f"remove 'broker' from {source.rsplit(':', 1)[0]}")
    # Silent, not refused: something may listen there (a stopped broker, another program),
    # where starting a broker would only fail with "address in use".
    silent = (f"if what listens at {where} is a broker, it is stopped or too busy to answer "
              "(try --connect-timeout); else " if first.dead == "no answer in time" else "")
    return (f"{silent}{start} (README: 'Running a cluster on a network') and workers "
            f"with 'rake-worker --broker {where}', or {unset} to use the embedded local cluster")
