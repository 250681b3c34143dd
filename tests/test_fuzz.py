"""Issue 6, decoders that never crash: every inbound path fed random and broken-valid frames.

Properties: decode raises nothing but DecodeError, and whatever it accepts re-encodes and
round-trips ("0 invalid accepted"); the broker, worker and submitter cores never raise on
peer input, and everything they send in answer is a valid message. RAKE_FUZZ_EXAMPLES sets
the examples per test (docs/security.md).
"""

from __future__ import annotations

import io
import itertools
import tempfile

import zmq
from hypothesis import given
from hypothesis import strategies as st

from broker.core import BrokerCore
from protocol import Hello, Load, Ready, WorkerInfo, Workers, encode
from protocol.timing import Timing
from submitter.core import ActionSetRun, RunOptions
from submitter.delivery import Deliveries
from submitter.files import OutputWriter
from submitter.rakefile import parse_rakefile
from submitter.report import Reporter
from submitter.brokerlink import SocketLink
from submitter.session import Session
from submitter.view import WorkerView
from tests.fuzzing import FUZZ, accepted_round_trips, check_sent, hostile_frames, tally
from worker.core import Send as WorkerSend
from worker.core import WorkerCore

TIMING = Timing(heartbeat=1.0, liveness=3, push_delay=0.02)
WORKER, SUBMITTER, STRANGER = "57" + "ab" * 8, "53" + "cd" * 8, "53" + "ef" * 8
IDS = (WORKER, SUBMITTER, STRANGER)
# What each program is sent in normal operation: half the inputs are built from these.
TO_WORKER = hostile_frames(IDS) | hostile_frames(IDS, ("JOB", "CANCEL", "ACK", "WANT", "CHUNK", "ERROR"))
TO_SUBMITTER = hostile_frames(IDS) | hostile_frames(IDS, ("RESULT", "WORKERS", "WANT", "CHUNK", "ERROR"))


def never_raises(feed, *args):
    try:
        return feed(*args)
    except Exception:
        tally("crashes")
        raise


@FUZZ
@given(hostile_frames(IDS))
def test_decode_raises_only_decode_error_and_what_it_accepts_round_trips(frames):
    accepted_round_trips(frames)


# ---- broker --------------------------------------------------------------------------------

def broker_with_peers() -> BrokerCore:
    core = BrokerCore(TIMING, 0.0)
    core.on_frames(0.0, WORKER, encode(Ready(name="w", host="h", version="1",
                                             load=Load(queue=0, running=0, slots=2, seq=1))))
    core.on_frames(0.0, SUBMITTER, encode(Hello(version="1")))
    return core


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(IDS + ("", "57" * 40)), hostile_frames(IDS)), min_size=1, max_size=3))
def test_broker_core_never_raises_on_peer_input_and_sends_only_valid_messages(inputs):
    core = broker_with_peers()
    for step, (peer, frames) in enumerate(inputs):
        now = 0.01 * (step + 1)
        tally("inputs")
        check_sent(s.frames for s in never_raises(core.on_frames, now, peer, frames))
        check_sent(s.frames for s in never_raises(core.on_tick, now))


# ---- worker --------------------------------------------------------------------------------

@FUZZ
@given(st.lists(TO_WORKER, min_size=1, max_size=3))
def test_worker_core_never_raises_on_broker_input_and_sends_only_valid_messages(inputs):
    core = WorkerCore("w", "h", 2, TIMING, 0.0)
    core.greet(0.0)
    for step, frames in enumerate(inputs):
        now = 0.01 * (step + 1)
        tally("inputs")
        actions = never_raises(core.on_frames, now, frames) + never_raises(core.on_tick, now)
        check_sent(a.frames for a in actions if isinstance(a, WorkerSend))


# ---- submitter -----------------------------------------------------------------------------

class FakeDealer:
    """The session's broker socket: serves queued frames, keeps what is sent."""

    def __init__(self) -> None:
        self.inbox: list = []
        self.sent: list = []
        self.parts: list = []   # of a message being sent frame by frame (send_frames)

    def recv_multipart(self, flags=0, copy=True):
        if not self.inbox:
            raise zmq.Again()
        return self.inbox.pop(0)

    def getsockopt(self, option):
        return zmq.POLLIN if option == zmq.EVENTS and self.inbox else 0

    def send_multipart(self, frames, flags=0, copy=True):
        self.sent.append(frames)

    def send(self, frame, flags=0, copy=True):
        self.parts.append(frame)
        if not flags & zmq.SNDMORE:
            self.sent.append(self.parts)
            self.parts = []


TABLE = Workers(full=True, workers=(WorkerInfo(id=WORKER, name="w", host="h", slots=2, queue=0,
                                               running=0, seq=1),))


def fresh_run(session: Session) -> None:
    """A new actionset of two remote actions, sent as jobs 1 and 2 to WORKER."""
    session.view = WorkerView(SUBMITTER)
    session.view.apply(TABLE)
    session.job_ids = itertools.count(1)
    aset = session.rakefile.actionsets[0]
    session.core = ActionSetRun(aset, session.view, session.job_ids, session.options, 0.0)
    session.deliveries = Deliveries(session.traffic, session.reporter, OutputWriter(session.root), 1, None)
    session._perform(session.core.start(0.0))


def test_submitter_session_never_raises_on_broker_input_and_sends_only_valid_messages():
    rakefile = parse_rakefile("actionset1:\n\tremote-echo one\n\tremote-echo two\n")
    sock = FakeDealer()
    with tempfile.TemporaryDirectory() as root:
        reporter = Reporter(out=io.BytesIO(), err=io.BytesIO())
        session = Session(rakefile, root, RunOptions(), reporter, TIMING, SocketLink(sock), SUBMITTER, TABLE)
        try:
            fresh_run(session)
            assert len(sock.sent) == 2, "the two jobs were not sent"

            @FUZZ
            @given(st.lists(TO_SUBMITTER, min_size=1, max_size=3))
            def feed(inputs):
                fresh_run(session)
                assert len(session.core.remote) == 2
                sock.inbox.extend(inputs)
                for _ in inputs:
                    tally("inputs")
                sock.sent.clear()
                never_raises(session._take_broker_messages)
                check_sent(sock.sent)

            feed()
        finally:
            session.close()
