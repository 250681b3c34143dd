"""A broker core on a fake clock, no sockets, and the builders its tests share (broker/core.py)."""

from broker.core import BrokerCore
from protocol import Hello, Load, Ready, decode, encode
from protocol.timing import Timing


TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
W1, W2, SUB, SUB2 = "57aa01", "57bb02", "53cc03", "53dd04"


def load(queue=0, running=0, slots=4, seq=1, seen=()):
    return Load(queue=queue, running=running, slots=slots, seq=seq, seen=seen)


def core(now=0.0):
    return BrokerCore(TIMING, now)


def ready(b, peer, now, name=None, **load_kw):
    return b.on_frames(now, peer, encode(Ready(name=name or peer, host="host", version="0.1.0",
                                               load=load(**load_kw))))


def hello(b, peer, now):
    return b.on_frames(now, peer, encode(Hello(version="0.1.0", name="sub")))


def decoded(sends):
    """[(peer, message, blobs)] from a list of Send."""
    return [(s.peer, *decode(s.frames)) for s in sends]


def messages_to(sends, peer, kind=object):
    return [m for p, m, _ in decoded(sends) if p == peer and isinstance(m, kind)]


def cluster(now=0.0):
    """A broker with two workers and one submitter that already has the table."""
    b = core(now)
    ready(b, W1, now, name="w1", slots=8)
    ready(b, W2, now, name="w2", slots=2)
    hello(b, SUB, now)
    b.on_tick(now + TIMING.push_delay)   # flush the join pushes
    return b
