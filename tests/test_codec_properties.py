"""Property tests of the codec: plausible hostile frames, random valid jobs and results."""

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import SIGNATURE, FileRef, Job, Load, Result, decode, encode
from protocol.messages import MESSAGE_TYPES
from protocol.schema import MAX_ID, U32
from tests.fuzzing import FUZZ, accepted_round_trips


# ---- property tests ----------------------------------------------------------------------

_msgpack_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
                    | st.floats() | st.text(max_size=20) | st.binary(max_size=20))
_msgpack_values = st.recursive(
    _msgpack_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(sorted({
    "type", "job", "worker", "command", "files", "client", "attempt", "timeout", "status", "code",
    "stdout", "stderr", "outputs", "skipped", "error", "elapsed", "load", "queue", "running",
    "slots", "seq", "seen", "full", "workers", "gone", "kill", "message", "reason", "name",
    "host", "version", "path", "mode", "blob", "id",
}))
_plausible_headers = st.dictionaries(
    _field_names, _msgpack_values, max_size=8,
).flatmap(lambda d: st.sampled_from(sorted(MESSAGE_TYPES)).map(lambda t: {**d, "type": t}))


@st.composite
def _hostile_frames(draw):
    """Mostly-plausible frames: a right or wrong signature, a header near the schema, blobs."""
    signature = draw(st.sampled_from([SIGNATURE, b"RAKE/2", b""]) | st.binary(max_size=20))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        header = draw(st.binary(max_size=64))
    elif kind == 1:
        header = msgpack.packb(draw(_msgpack_values), use_bin_type=True)
    else:
        header = msgpack.packb(draw(_plausible_headers), use_bin_type=True)
        if kind == 3 and header:
            cut = draw(st.integers(0, len(header) - 1))
            header = header[:cut] + draw(st.binary(max_size=4)) + header[cut + 1:]
    blobs = draw(st.lists(st.binary(max_size=8), max_size=3))
    return [signature, header, *blobs][: draw(st.integers(0, 5))]


@FUZZ
@given(_hostile_frames())
def test_decode_of_plausible_frames_only_ever_raises_decode_error(frames):
    # Random bytes and schema-built mutations are in tests/test_fuzz.py; these are headers
    # made of known field names with values of any type. What gets through round-trips.
    accepted_round_trips(frames)


_ids = st.text(max_size=MAX_ID)
_labels = st.text(max_size=40)
_finite = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
_loads = st.builds(
    Load,
    queue=st.integers(0, U32), running=st.integers(0, U32), slots=st.integers(1, 4096),
    seq=st.integers(0, 2**63 - 1),
    seen=st.dictionaries(_ids, st.integers(0, 2**63 - 1), max_size=4).map(lambda d: tuple(sorted(d.items()))),
)


@st.composite
def _files_and_blobs(draw, max_files=5):
    blobs = draw(st.lists(st.binary(max_size=32), max_size=6))
    files = ()
    if blobs:
        files = tuple(draw(st.lists(st.builds(
            FileRef, path=st.text(min_size=1, max_size=50), mode=st.integers(0, 0o7777),
            blob=st.integers(0, len(blobs) - 1)), max_size=max_files)))
    return files, blobs


@st.composite
def _jobs(draw):
    files, blobs = draw(_files_and_blobs())
    job = Job(
        job=draw(st.integers(0, 2**63 - 1)), worker=draw(_ids),
        command=draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=200)), files=files, client=draw(_ids),
        attempt=draw(st.integers(1, 100)), timeout=draw(st.none() | _finite),
    )
    return job, blobs


@st.composite
def _results(draw):
    outputs, blobs = draw(_files_and_blobs())
    index = st.none() | (st.integers(0, len(blobs) - 1) if blobs else st.none())
    result = Result(
        job=draw(st.integers(0, 2**63 - 1)), client=draw(_ids),
        status=draw(st.sampled_from(Result.STATUSES)), code=draw(st.integers(0, 255)),
        stdout=draw(index), stderr=draw(index), outputs=outputs,
        skipped=tuple(draw(st.lists(_labels, max_size=3))), error=draw(_labels),
        elapsed=draw(_finite), attempt=draw(st.integers(1, 100)), worker=draw(_ids),
        load=draw(st.none() | _loads),
    )
    return result, blobs


@settings(max_examples=500, deadline=None, database=None)
@given(st.one_of(_jobs(), _results()))
def test_random_valid_jobs_and_results_round_trip_equal(msg_and_blobs):
    msg, blobs = msg_and_blobs
    decoded, got_blobs = decode(encode(msg, blobs))
    assert decoded == msg
    assert got_blobs == blobs
