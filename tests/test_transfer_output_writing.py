"""Writing delivered outputs: interrupts, failed renames, a read-only root, heartbeats."""

from __future__ import annotations

import io
import os

import pytest

from protocol import FileRef

from tests.delivery_helpers import _inline_deliveries


def _inline_result(names):
    import hashlib
    from protocol import Result
    from submitter.effects import Deliver
    refs = tuple(FileRef(path=n, mode=0o644, blob=i, digest=hashlib.sha256(n.encode()).hexdigest(), size=len(n))
                 for i, n in enumerate(names))
    return Deliver(0, Result(job=1, client="c", status="exited", worker="wa", outputs=refs), [n.encode() for n in names], "wa")


def test_an_interrupt_while_outputs_are_written_leaves_none_of_them_and_no_temporary_file(tmp_path, monkeypatch):
    import submitter.files
    from submitter.interrupts import Interrupted
    from submitter.rakefile import Action
    (tmp_path / "b.txt").write_text("old")
    real, calls = submitter.files._write_new, []

    def interrupted_on_the_third(dir_fd, name, data, mode):
        calls.append(name)
        real(dir_fd, name, data[:1], mode)   # half of it written, then Ctrl-C
        if len(calls) == 3:
            raise Interrupted(130)
        real(dir_fd, name, data, mode)
    monkeypatch.setattr(submitter.files, "_write_new", interrupted_on_the_third)
    err = io.BytesIO()
    traffic, deliveries = _inline_deliveries(tmp_path, err)
    with pytest.raises(Interrupted):
        deliveries.start(_inline_result(["a.txt", "b.txt", "sub/c.txt"]), Action("make", True, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"] and (tmp_path / "b.txt").read_text() == "old"
    text = err.getvalue().decode()   # it ended, and its end is said, as for a download cut short
    assert "FAILED: [outputs lost] make" in text and "interrupted before its outputs were written" in text
    traffic.close()


def test_a_rename_that_fails_after_others_names_the_outputs_that_were_written(tmp_path, monkeypatch):
    import submitter.files
    from submitter.rakefile import Action
    (tmp_path / "m.txt").write_text("keep")
    real = submitter.files.OutputWriter.commit

    def a_directory_appears_at_m(self):   # as an immutable file or a mount point refuses the rename
        os.unlink(tmp_path / "m.txt")
        os.makedirs(tmp_path / "m.txt" / "full")
        return real(self)
    monkeypatch.setattr(submitter.files.OutputWriter, "commit", a_directory_appears_at_m)
    err = io.BytesIO()
    traffic, deliveries = _inline_deliveries(tmp_path, err)
    deliveries.start(_inline_result(["a.txt", "m.txt", "z.txt"]), Action("make", True, 2))
    text = err.getvalue().decode()
    assert "cannot write 'm.txt'" in text and "1 of its 3 outputs were written before that: 'a.txt'" in text
    assert "none of its outputs were written" not in text
    assert (tmp_path / "a.txt").read_text() == "a.txt" and not (tmp_path / "z.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rake-")]
    traffic.close()


def test_downloads_wait_in_the_temp_dir_when_the_project_root_is_read_only(tmp_path, monkeypatch):
    import errno
    import tempfile
    import submitter.traffic
    from submitter.traffic import FileTraffic
    real = submitter.traffic.locked_tempdir

    def read_only_root(prefix, lock, base=None):
        if base == str(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(prefix, lock, base)
    monkeypatch.setattr(submitter.traffic, "locked_tempdir", read_only_root)
    traffic = FileTraffic(str(tmp_path))
    try:
        part = traffic._temp_path()
        assert os.path.dirname(os.path.dirname(part)) == tempfile.gettempdir() == traffic.where()
    finally:
        traffic.close()


def test_a_delivery_of_many_outputs_or_of_a_long_copy_lets_the_loop_keep_its_heartbeat(tmp_path, monkeypatch):
    """Tens of thousands of outputs, or one copied across filesystems, take seconds to
    write: without pulses the broker heard nothing from us for that long, dropped us and
    killed our other running actions."""
    import rake_common.sparse
    from submitter.delivery import Deliveries
    from submitter.files import OutputWriter, copy_into
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic, pulses = FileTraffic(str(tmp_path)), []
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1,
                            None, pulse=lambda: pulses.append(1))
    assert deliveries.writer.pulse is deliveries.pulse   # big outputs copied across filesystems
    (tmp_path / "shared").write_bytes(b"y" * 10)          # and copies of one download pulse too
    deliveries.needs["ab"], deliveries.ready["ab"] = 2, str(tmp_path / "shared")
    monkeypatch.setattr(traffic, "copy_of", lambda tmp, pulse=None: pulses.append(pulse) or tmp)
    deliveries._take("ab")
    assert pulses.pop() is deliveries.pulse
    names = [f"out/{i}" for i in range(300)]
    assert deliveries.start(_inline_result(names), Action("make", True, 2)) == ([], True)
    assert len(pulses) >= len(names) and len(list((tmp_path / "out").iterdir())) == len(names)
    monkeypatch.setattr(rake_common.sparse, "COPY_SLICE", 1000)
    (tmp_path / "big").write_bytes(b"x" * 10_000)
    pulses.clear()
    with open(tmp_path / "big", "rb") as src, open(tmp_path / "copy", "wb") as dst:
        copy_into(src.fileno(), dst.fileno(), lambda: pulses.append(1))
    assert len(pulses) == 10 and (tmp_path / "copy").read_bytes() == b"x" * 10_000
    traffic.close()


def test_a_pulse_sends_a_heartbeat_when_one_is_due_and_excuses_the_broker_meanwhile():
    from submitter.liveness import BrokerLiveness
    from types import SimpleNamespace
    sent = []
    loop = SimpleNamespace(last_heard=0.0, last_sent=0.0, timing=SimpleNamespace(heartbeat=1e-9),
                           link=SimpleNamespace(pack=lambda msg: msg), _send=sent.append)
    BrokerLiveness._pulse(loop)
    assert [type(m).__name__ for m in sent] == ["Heartbeat"] and loop.last_heard > 0
