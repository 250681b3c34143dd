"""A peer's DEALER socket to the broker, with an identity that survives reconnects."""

from __future__ import annotations

import os

import zmq

from protocol.codec import MAX_FRAME
from protocol.timing import RECONNECT_MAX
from rakeauth.client import ClientCurve


def new_identity(prefix: bytes) -> bytes:
    return prefix + os.urandom(8)


def make_dealer(ctx: zmq.Context, endpoint: str, identity: bytes,
                curve: ClientCurve | None = None) -> zmq.Socket:
    """A DEALER that keeps `identity` across reconnects, so the broker knows it is the same peer."""
    sock = ctx.socket(zmq.DEALER)
    if curve is not None:
        curve.apply(sock)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(RECONNECT_MAX * 1000))  # libzmq's own backoff, 0.1 s to 32 s
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    sock.connect(endpoint)
    return sock
