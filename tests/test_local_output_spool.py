"""A local action's output over IN_MEMORY bytes is written from its capture file in pieces,
never read whole (2 GiB of output took 2 GiB of rake-submit's memory), and all of it arrives."""

from __future__ import annotations

import io
import tempfile

import pytest

from submitter.output import Output
from submitter.spool import IN_MEMORY, Spool, take
from tests.procs import submit

pytestmark = pytest.mark.timeout(60)


def capture(data: bytes):
    fh = tempfile.TemporaryFile()
    fh.write(data)
    fh.flush()
    return fh


def test_small_output_is_read_into_memory_and_its_file_closed():
    fh = capture(b"hello\n")
    assert take(fh) == b"hello\n" and fh.closed


def test_big_output_stays_in_its_file_and_is_written_whole_then_closed():
    data = b"x" * IN_MEMORY + b"tail"   # no newline at the end
    fh = capture(data)
    spool = take(fh)
    assert isinstance(spool, Spool) and len(spool) == len(data) and not fh.closed
    out = io.BytesIO()
    output = Output(out, io.BytesIO())
    output.write("out", spool)
    output.write("out", b"rake: ours\n", ours=True)   # starts on a line of its own
    assert out.getvalue() == data + b"\nrake: ours\n" and fh.closed


def test_a_local_action_printing_more_than_fits_in_memory_prints_all_of_it_in_order(tmp_path):
    size = IN_MEMORY + 12345
    (tmp_path / "Rakefile").write_text(
        f"actionset1:\n\thead -c {size} /dev/zero | tr '\\0' a; echo; echo end-of-big\n"
        "actionset2:\n\techo after\n")
    res = submit(["-q"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout == b"a" * size + b"\nend-of-big\nafter\n"
