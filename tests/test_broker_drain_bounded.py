"""The broker's loop gives its timers a turn after a bounded time of handling messages, not
only after BATCH of them: one peer's legal but slow messages (16 MiB headers) must not keep
the broker's heartbeats from going out (broker/loop.py, DRAIN_FOR)."""

import itertools
import time

import zmq

from broker import loop as loop_module
from broker.loop import BrokerLoop
from protocol import Heartbeat, encode
from protocol.timing import Timing


def test_slow_messages_give_the_timers_a_turn_before_the_batch_is_used_up(monkeypatch):
    ctx = zmq.Context.instance()
    loop = BrokerLoop("inproc://drain-bounded", Timing(), lambda line: None, ctx=ctx)
    peer = ctx.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    handled = []
    try:
        peer.connect("inproc://drain-bounded")
        for _ in range(5):
            peer.send_multipart(encode(Heartbeat()))
        poller = zmq.Poller()
        poller.register(loop.sock, zmq.POLLIN)
        assert poller.poll(10_000)
        real = loop.core.on_frames
        monkeypatch.setattr(loop.core, "on_frames", lambda *a: handled.append(1) or real(*a))
        clock = itertools.count(time.monotonic(), 1.0)   # each message seems to take a second
        monkeypatch.setattr(loop_module.time, "monotonic", lambda: next(clock))
        loop._drain()
    finally:
        monkeypatch.undo()
        peer.close()
        loop.close()
    assert len(handled) == 1
