"""Big outputs fetched by the submitter: lost workers, lost blobs, runs that end first."""

from __future__ import annotations

import io
import os

from protocol import Chunk, FileRef, decode

from tests.delivery_helpers import _inline_deliveries


def test_an_action_waiting_on_a_download_shared_with_a_lost_worker_fetches_it_from_its_own(tmp_path):
    # Two actions on two workers made the same big output; only one download runs at a time.
    from protocol import FileRef, Result, decode
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic = FileTraffic(str(tmp_path))
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1, None)
    ref = lambda name: FileRef(path=name, mode=0o644, digest="ab" * 32, size=5 << 20)   # noqa: E731
    ends = [Deliver(i, Result(job=i + 1, client="c", status="exited", worker=w, outputs=(ref(f"out{i}"),)), [], w)
            for i, w in enumerate(("wa", "wb"))]
    first, _ = deliveries.start(ends[0], Action("make out0", True, 2))
    second, _ = deliveries.start(ends[1], Action("make out1", True, 3))
    assert [decode(f)[0].to for f in first] == ["wa"] and second == []
    settled = deliveries.worker_gone("wa")
    assert (settled.redo, settled.failed) == ([(0, "wa", "")], [])
    assert [(decode(f)[0].to, decode(f)[0].digest) for f in settled.frames] == [("wb", "ab" * 32)]
    traffic.close()


def test_a_failed_action_whose_big_output_is_lost_is_reported_failed_with_its_output_not_rerun(tmp_path):
    from protocol import FileRef, Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic, err = FileTraffic(str(tmp_path)), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=err), OutputWriter(str(tmp_path)), 1, None)
    ref = FileRef(path="log.bin", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=3, worker="wa", outputs=(ref,), stderr=0)
    deliveries.start(Deliver(0, result, [b"compiler says no\n"], "wa"), Action("make log", True, 2))
    assert deliveries.worker_gone("wa") == ([], [], [0], [])   # (frames, redo, failed, done)
    text = err.getvalue().decode()
    assert "FAILED: [code=3] make log" in text and "compiler says no" in text
    assert "output 'log.bin' lost: worker wa was lost" in text
    assert not traffic.incoming.busy("cd" * 32)
    traffic.close()


def test_a_succeeded_action_whose_big_output_cannot_be_written_here_names_it_and_shows_its_output(tmp_path):
    from protocol import Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic, out, err = FileTraffic(str(tmp_path)), io.BytesIO(), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=out, err=err), OutputWriter(str(tmp_path)), 1, None)
    ref = FileRef(path="a.bin", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=0, worker="wa", outputs=(ref,), stdout=0, stderr=1)
    deliveries.start(Deliver(0, result, [b"made\n", b"to-stderr\n"], "wa"), Action("make a", True, 2))
    full = os.open("/dev/full", os.O_WRONLY)   # writing it fails here as on a full disk
    os.dup2(full, traffic.incoming.downloads["cd" * 32].fd)
    os.close(full)
    settled = deliveries.on_chunk(Chunk(to="c", digest="cd" * 32, offset=0, total=5 << 20, sender="wa"), [b"x"])
    assert settled.failed == [0]
    text = err.getvalue().decode()
    assert out.getvalue() == b"made\n" and "to-stderr" in text
    assert f"output 'a.bin' lost: cannot write it (downloading into {tmp_path}): No space left on device" in text
    assert not list(tmp_path.glob("a.bin"))
    traffic.close()


def test_a_holder_that_lost_a_shared_blob_fails_only_its_own_action_the_other_fetches_from_its_worker(tmp_path):
    from protocol import Chunk, FileRef, Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic

    traffic = FileTraffic(str(tmp_path))
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=io.BytesIO()), OutputWriter(str(tmp_path)), 1, None)
    ref = lambda name: FileRef(path=name, mode=0o644, digest="ab" * 32, size=5 << 20)   # noqa: E731
    for i, w in enumerate(("wa", "wb")):
        deliveries.start(Deliver(i, Result(job=i + 1, client="c", status="exited", worker=w, outputs=(ref(f"o{i}"),)),
                                 [], w), Action(f"make o{i}", True, 2 + i))
    missing = Chunk(to="c", digest="ab" * 32, offset=0, total=0, sender="wa", missing=True)
    settled = deliveries.on_chunk(missing, [])
    assert [(i, w) for i, w, _ in settled.redo] == [(0, "wa")] and settled.failed == []   # ran again
    assert [(decode(f)[0].to, decode(f)[0].digest) for f in settled.frames] == [("wb", "ab" * 32)]
    assert list(deliveries.pending) == [1]
    traffic.close()


def test_a_worker_missing_one_blob_loses_only_the_actions_waiting_for_it(tmp_path):
    """It evicted one output fetched late: its other actions' downloads are unharmed."""
    import hashlib
    from protocol import Result
    from submitter.effects import Deliver
    from submitter.rakefile import Action
    traffic, deliveries = _inline_deliveries(tmp_path, io.BytesIO())
    d1, d2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    for index, (name, digest) in enumerate((("big1", d1), ("big2", d2))):
        r = Result(job=index + 1, client="c", status="exited", worker="wa",
                   outputs=(FileRef(path=name, mode=0o644, digest=digest, size=5 << 20),))
        assert deliveries.start(Deliver(index, r, [], "wa"), Action(f"make {name}", True, 2 + index))[1] is None
    settled = deliveries.on_chunk(Chunk(to="c", digest=d1, offset=0, total=0, sender="wa", missing=True), [])
    assert [i for i, _, _ in settled.redo] == [0] and list(deliveries.pending) == [1]
    assert traffic.incoming.busy(d2)
    traffic.close()


def test_an_action_whose_outputs_were_still_coming_when_the_run_ended_is_reported_with_its_output(tmp_path):
    """The broker given up on (or Ctrl-C) while a failed action's big output downloaded: its
    RESULT was in hand (and acknowledged), yet it was never reported."""
    from protocol import Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic, out, err = FileTraffic(str(tmp_path)), io.BytesIO(), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=out, err=err), OutputWriter(str(tmp_path)), 1, None,
                            name_of={"57ab": "w1"}.get)
    ref = FileRef(path="big", mode=0o644, digest="cd" * 32, size=5 << 20)
    result = Result(job=1, client="c", status="exited", code=1, worker="57ab", outputs=(ref,), stdout=0)
    deliveries.start(Deliver(0, result, [b"printed-by-action\n"], "w1"), Action("make-big", True, 2))
    deliveries.abandon_all("the broker went silent")
    text = err.getvalue().decode()
    assert out.getvalue() == b"printed-by-action\n" and "FAILED: [code=1] make-big" in text
    assert "output 'big' lost: the broker went silent" in text and not deliveries.pending
    assert not traffic.incoming.busy("cd" * 32)
    again = Result(job=2, client="c", status="exited", code=1, worker="57ab", outputs=(ref,))
    deliveries.start(Deliver(1, again, [], "w1"), Action("make-big", True, 3))
    deliveries.worker_gone("57ab")
    assert "output 'big' lost: worker w1 was lost" in err.getvalue().decode()
    traffic.close()


def test_an_action_whose_several_outputs_were_cut_off_by_ctrl_c_names_them_in_the_plural(tmp_path):
    """Ctrl-C while three big outputs of one action downloaded said "output 'a', 'b', 'c'
    lost: interrupted before it arrived"."""
    from protocol import Result
    from submitter.delivery import Deliveries
    from submitter.effects import Deliver
    from submitter.files import OutputWriter
    from submitter.rakefile import Action
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic, err = FileTraffic(str(tmp_path)), io.BytesIO()
    deliveries = Deliveries(traffic, Reporter(out=io.BytesIO(), err=err), OutputWriter(str(tmp_path)), 1, None)
    refs = tuple(FileRef(path=n, mode=0o644, digest=c * 32, size=5 << 20) for n, c in (("a", "ab"), ("b", "cd")))
    result = Result(job=1, client="c", status="exited", code=0, worker="57ab", outputs=refs)
    deliveries.start(Deliver(0, result, [], "w1"), Action("make-two", True, 2))
    deliveries.abandon_all("interrupted during the download")
    assert "outputs 'a', 'b' lost: interrupted during the download" in err.getvalue().decode()
    traffic.close()
