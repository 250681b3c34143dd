"""The bounds and the JSON shape of STATUS-REPLY (protocol/status.py)."""

import pytest

from protocol import DecodeError, StatusReply, decode, encode
from protocol.codec import MAX_HEADER
from protocol.schema import MAX_ID, U32
from protocol.status import (
    EXCERPT, LABEL, MAX_COUNTERS, MAX_STATUS_FLIGHT, MAX_STATUS_RECENT, MAX_STATUS_SUBMITTERS,
    MAX_STATUS_WORKERS, FlightInfo, ResultInfo, SubmitterState, WorkerState, status_json,
)

from tests.codec_helpers import ONE_OF_EACH, header_frames, raw_header


# ---- STATUS-REPLY bounds ----------------------------------------------------------------

def _widest_status_reply() -> StatusReply:
    """Every row cap reached, every string at its limit in 4-byte characters."""
    wide = lambda n: "\U0001F600" * n  # noqa: E731
    pid = "f" * MAX_ID
    return StatusReply(
        version=wide(64), uptime=1e9, heartbeat=3600.0, workers_total=2**40,
        workers=tuple(WorkerState(id=pid, name=wide(LABEL), host=wide(LABEL), version=wide(LABEL),
                                  slots=4096, queue=U32, running=U32, state=wide(16), heard=1e9,
                                  draining=True) for _ in range(MAX_STATUS_WORKERS)),
        submitters=tuple(SubmitterState(id=pid, name=wide(LABEL), heard=1e9, jobs=2**40)
                         for _ in range(MAX_STATUS_SUBMITTERS)), submitters_total=2**40,
        flight=tuple(FlightInfo(job=2**63 - 1, client=pid, submitter=wide(LABEL), worker=pid,
                                worker_name=wide(LABEL), command=wide(EXCERPT), attempt=100, age=1e9,
                                state=wide(16)) for _ in range(MAX_STATUS_FLIGHT)), flight_total=2**40,
        recent=tuple(ResultInfo(job=2**63 - 1, client=pid, worker=pid, worker_name=wide(LABEL),
                                command=wide(EXCERPT), status=wide(16), code=255, elapsed=1e9, ago=1e9,
                                error=wide(EXCERPT)) for _ in range(MAX_STATUS_RECENT)),
        counters=tuple((f"{i:064d}", 2**63 - 1) for i in range(MAX_COUNTERS)),
    )


def test_the_widest_possible_status_reply_still_fits_in_one_header():
    reply = _widest_status_reply()
    frames = encode(reply)
    assert len(frames[1]) <= MAX_HEADER
    assert decode(frames)[0] == reply


def test_a_status_reply_with_more_rows_than_its_cap_is_refused():
    header = raw_header(StatusReply(version="1", uptime=0.0, heartbeat=1.0, workers=(), workers_total=0))
    row = dict(id="aa", name="w", host="h", version="1", slots=1, queue=0, running=0, state="ok", heard=0.0)
    header["workers"] = [row] * (MAX_STATUS_WORKERS + 1)
    with pytest.raises(DecodeError, match="workers"):
        decode(header_frames(header))


def test_the_json_shape_of_a_status_is_its_wire_fields_with_counters_as_an_object():
    reply = next(m for m, _ in ONE_OF_EACH if isinstance(m, StatusReply))
    shape = status_json(reply)
    assert set(shape) == {"version", "uptime", "heartbeat", "workers", "workers_total", "submitters",
                          "submitters_total", "flight", "flight_total", "recent", "counters"}
    assert shape["counters"] == {"in.JOB": 7, "results": 6}
    assert shape["workers"][0]["name"] == "w1" and shape["flight"][0]["state"] == "running"
