"""Found reviewing session 13's changes: a broker stopped while its endpoint line cannot be written, Spools
queued without bound for a reader that does not read, `-n` showing `#` a requires line
would take as a comment, and shared RESULT frames counted once per output."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from protocol.messages import FileRef
from submitter import output as output_mod
from submitter.output import Output
from submitter.spool import Spool
from submitter.traffic import FileTraffic
from tests.procs import command, rake_env, submit

pytestmark = pytest.mark.timeout(60)


def test_broker_stops_on_sigterm_while_its_endpoint_line_waits_for_a_reader(tmp_path):
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:   # fill the pipe: the broker's first write blocks
        while True:
            os.write(w, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    sock = tmp_path / "b.sock"
    proc = subprocess.Popen(command("rake-broker") + ["--bind", f"ipc://{sock}", "-q"], env=rake_env(),
                            stdout=w, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(w)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)   # now blocked writing the endpoint
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(r)


def test_spools_queued_for_a_reader_that_does_not_read_are_bounded(monkeypatch):
    monkeypatch.setattr(output_mod, "MAX_SPOOLS", 2)
    r, w = os.pipe()
    stream = os.fdopen(w, "wb", buffering=0)
    output = Output(stream, open(os.devnull, "wb"), threaded=True)
    spools = []
    for _ in range(5):
        fh = tempfile.TemporaryFile()
        fh.write(b"y" * 200_000)   # more than the pipe holds
        fh.flush()
        spools.append(Spool(fh, 200_000))
    done = threading.Event()

    def write_all():
        for s in spools:
            output.write("out", s)
        done.set()
    threading.Thread(target=write_all, daemon=True).start()
    time.sleep(0.5)
    assert not done.is_set()   # the loop waits: at most MAX_SPOOLS descriptors held
    assert output.spools <= 2 and len(output.pending) <= 2
    reader = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(r, 1 << 16), b"")], daemon=True)
    reader.start()
    assert done.wait(20)
    output.drain()
    stream.close()
    reader.join(10)
    os.close(r)
    assert all(s.fh.closed for s in spools)


def test_dry_run_escapes_a_hash_in_a_required_name_as_a_requires_line_needs(tmp_path):
    (tmp_path / "hash#name.txt").write_text("x\n")
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-cat hash\\#name.txt\n\t\trequires hash\\#name.txt\n")
    res = submit(["-n"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.decode().splitlines() if "requires" in ln)
    shown = line.split("requires ", 1)[1].rsplit(" (", 1)[0]
    (tmp_path / "R2").write_text(f"actionset1:\n\tremote-cat x\n\t\trequires {shown}\n")
    again = submit(["-n", "-f", "R2"], cwd=tmp_path)   # pasted back, it names the same file
    assert again.returncode == 0, again.stderr
    assert "(2 B)" in again.stdout.decode()


def test_outputs_sharing_one_frame_are_counted_once_as_received(tmp_path):
    traffic = FileTraffic.__new__(FileTraffic)
    traffic.known, traffic.received_bytes = {}, 0
    refs = [FileRef(path=p, mode=0o644, blob=0, digest="d" * 64, size=1000) for p in ("a", "b", "c")]
    FileTraffic.learned(traffic, "w", refs, [b"z" * 1000])
    assert traffic.received_bytes == 1000


def test_root_sees_a_full_ext4_disk_whose_free_blocks_are_its_reserved_clusters(monkeypatch, tmp_path):
    """ext4's f_bfree keeps its reserved clusters (2%, up to 16 MiB) that root cannot use."""
    import errno
    from worker import watch

    class St:
        f_frsize, f_bfree, f_bavail = 1024, 4096, 0
    monkeypatch.setattr(watch.os, "statvfs", lambda path: St)

    def no_room(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(watch.os, "posix_fallocate", no_room)
    assert watch.disk_full(str(tmp_path), as_root=True)
    monkeypatch.setattr(watch.os, "posix_fallocate", lambda fd, offset, size: None)
    assert not watch.disk_full(str(tmp_path), as_root=True)


def test_an_exit_0_leaving_most_of_a_mib_free_is_no_full_disk(monkeypatch, tmp_path):
    from worker import watch

    class St:
        f_frsize, f_bfree, f_bavail = 1024, 512, 512
    monkeypatch.setattr(watch.os, "statvfs", lambda path: St)
    assert watch.disk_full(str(tmp_path))   # a failure: perhaps for the disk
    assert not watch.disk_full(str(tmp_path), below=watch.FULL_AFTER_SUCCESS)
