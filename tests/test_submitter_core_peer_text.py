"""An actionset run given hostile text by peers, and malformed results."""

from protocol import Error
from submitter.core import Deliver, Note, SendJob

from tests.submitter_core_helpers import info, make_run, of, remote, result


# ---- peer text and malformed results -----------------------------------------------------

def test_a_worker_name_with_escape_codes_reaches_failure_lines_and_retry_notes_escaped():
    evil = "w\x1b[2J\r\nFAKE: \x9b31m\x7f"
    run = make_run(remote(2), workers=(info("id-aa", evil, slots=2),), keep_going=True)
    first, second = of(SendJob, run.start(0.0))
    [delivered] = of(Deliver, run.on_result(1.0, result(first, code=1), []))
    notes = of(Note, run.on_result(1.0, result(second, status="error", error="disk\x1b[31m\nfull"), []))
    shown = [delivered.worker] + [n.text for n in notes]
    assert notes and delivered.worker == "w\\x1b[2J\\r\\nFAKE: \\x9b31m\\x7f"
    for text in shown:
        assert text.isprintable(), text


def test_a_broker_error_message_becomes_one_line_without_escape_codes():
    run = make_run(remote(1))
    [note] = of(Note, run.on_error(0.0, Error(code="bad-message", message="x\x1b]0;owned\x07\nrake: FAKE")))
    assert note.text.isprintable() and "\\x1b]0;owned\\x07\\nrake: FAKE" in note.text


def test_a_result_output_with_neither_its_bytes_nor_a_digest_is_retried_as_that_workers_error():
    from protocol import FileRef
    run = make_run(remote(1))
    [first] = of(SendJob, run.start(0.0))
    hollow = FileRef(path="out\n.o", mode=0o644)   # no blob, no digest: nothing could be fetched
    effects = run.on_result(1.0, result(first, outputs=(hollow,)), [])
    assert not of(Deliver, effects)   # no download is waited for
    [again] = of(SendJob, effects)
    [note] = of(Note, effects)
    assert again.attempt == 2 and again.worker != first.worker
    assert 'output "out\\n.o" has neither its bytes nor a digest' in note.text
