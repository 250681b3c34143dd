"""The broker core passing on WANT and CHUNK: a CHUNK only where its WANT came from."""

from broker.asked import ASKED_IDLE, Asked
from protocol import Bye, Chunk, Want, encode

from tests.broker_core_helpers import SUB, SUB2, W1, W2, cluster, core, decoded, hello

DIGEST, OTHER = "ab" * 32, "cd" * 32


def want(b, now, requester, holder, digest=DIGEST, restart=True, upto=8 << 20):
    return b.on_frames(now, requester, encode(Want(to=holder, digest=digest, upto=upto, restart=restart)))


def chunk(b, now, holder, requester, digest=DIGEST, offset=0, data=b"x" * 1000):
    return b.on_frames(now, holder, encode(Chunk(to=requester, digest=digest, offset=offset, total=4000), [data]))


def test_a_chunk_answering_a_want_is_forwarded_with_the_real_sender_and_the_same_blob_frame():
    b = cluster()
    [(peer, fwd, _)] = decoded(want(b, 1.0, W1, SUB))
    assert (peer, fwd.sender) == (SUB, W1)
    data = bytearray(b"y" * 1000)
    [send] = chunk(b, 1.1, SUB, W1, data=data)
    assert send.peer == W1 and send.frames[2] is data
    [(_, fwd, _)] = decoded([send])
    assert fwd.sender == SUB and b.stats["chunks"] == 1


def test_a_chunk_its_receiver_never_asked_for_is_dropped_and_counted():
    # A hostile peer's big chunks would queue the broker's heartbeats to the worker behind
    # them until the worker took the broker for silent and lost its jobs.
    b = cluster()
    assert chunk(b, 1.0, SUB, W1, data=b"x" * (4 << 20)) == []
    assert b.stats["transfers_dropped"] == 1 and b.stats["chunks"] == 0


def test_a_chunk_is_forwarded_only_from_the_holder_asked_for_that_digest_to_the_peer_that_asked():
    b = cluster()
    hello(b, SUB2, 0.5)
    want(b, 1.0, W1, SUB)
    assert chunk(b, 1.1, SUB2, W1) == []            # another peer
    assert chunk(b, 1.1, SUB, W1, digest=OTHER) == []   # another blob
    assert chunk(b, 1.1, SUB, W2) == []             # another receiver
    assert chunk(b, 1.1, W1, SUB) == []             # the way back
    assert len(chunk(b, 1.1, SUB, W1)) == 1
    assert b.stats["transfers_dropped"] == 4


def test_every_chunk_of_a_stream_and_a_missing_one_pass_while_it_is_asked_for():
    b = cluster()
    want(b, 1.0, SUB, W1)
    for i in range(4):
        assert len(chunk(b, 1.0 + i, W1, SUB, offset=i * 1000)) == 1
    missing = encode(Chunk(to=SUB, digest=DIGEST, offset=0, total=0, missing=True))
    assert len(b.on_frames(6.0, W1, missing)) == 1


def test_more_credit_alone_opens_the_way_as_after_a_broker_restart():
    # A new broker never saw the WANT that opened the stream: the receiver's next WANT,
    # a restart (ask_again) or more credit, is what lets the chunks through.
    b = cluster()
    assert chunk(b, 1.0, SUB, W1, offset=3000) == []
    want(b, 1.1, W1, SUB, restart=False, upto=12 << 20)
    assert len(chunk(b, 1.2, SUB, W1, offset=3000)) == 1


def test_an_ask_is_forgotten_after_a_long_idle_time_but_chunks_keep_it_alive():
    b = cluster()
    want(b, 1.0, W1, SUB)
    want(b, 1.0, W2, SUB)
    t = 1.0
    for _ in range(3):   # a slow stream: a chunk every ASKED_IDLE/2 seconds
        t += ASKED_IDLE / 2
        assert len(chunk(b, t, SUB, W1)) == 1
    assert chunk(b, t, SUB, W2) == []


def test_a_requester_that_leaves_is_forgotten_with_what_it_asked_for():
    b = cluster()
    want(b, 1.0, W1, SUB)
    b.on_frames(1.1, W1, encode(Bye(reason="stopping")))
    assert W1 not in b.asked.by_requester


def test_the_asks_remembered_are_bounded_per_requester_and_a_flood_evicts_only_its_own():
    asked = Asked(per_peer=100)
    asked.wanted(0.0, W2, SUB, DIGEST)
    for i in range(1000):
        asked.wanted(1.0, W1, SUB, f"{i:064x}")
    assert len(asked.by_requester[W1]) == 100
    assert asked.may_send(2.0, SUB, W1, f"{999:064x}") and not asked.may_send(2.0, SUB, W1, f"{0:064x}")
    assert asked.may_send(2.0, SUB, W2, DIGEST)


def test_a_want_from_a_peer_not_registered_is_not_remembered():
    b = core()
    hello(b, SUB, 0.0)
    want(b, 0.0, W1, SUB)   # answered unknown-peer: it says READY, then asks again
    assert b.asked.by_requester == {}


def test_time_our_loop_was_stopped_does_not_age_the_asks():
    b = cluster()
    want(b, 1.0, W1, SUB)
    b.excuse_silence(1.0 + ASKED_IDLE * 2)
    assert len(chunk(b, 1.0 + ASKED_IDLE * 2.5, SUB, W1)) == 1
