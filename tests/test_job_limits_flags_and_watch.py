"""The limit flags, the watching helpers, and the store and job directories under an action user."""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import stat
import re

import pytest

from worker.limits import MAX_STREAM, NONE, Limits, add_arguments, from_args, unreachable
from worker.watch import read_capped, usage


def parse(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return from_args(p.parse_args(list(argv)))


def test_read_capped_says_whether_it_cut(tmp_path):
    with open(tmp_path / "out", "w+b") as stream:
        stream.write(b"abcdef")
        assert read_capped(stream, 0) == (b"abcdef", False)
        assert read_capped(stream, 6) == (b"abcdef", False)
        assert read_capped(stream, 4) == (b"abcd", True)


def test_output_read_back_never_exceeds_what_one_frame_holds():
    from protocol.codec import MAX_FRAME
    assert MAX_STREAM == MAX_FRAME   # the spawner's copy of the limit must follow the codec's
    assert Limits(max_output=0).output_cap == MAX_FRAME   # "off" still fits the RESULT
    assert Limits(max_output=4096).output_cap == 4096
    assert parse("--max-output", "65536").output_cap == MAX_FRAME


def test_usage_counts_files_and_stops_early(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"x" * 5000)
    size, count = usage([str(tmp_path)])
    assert count == 10 and size >= 50000
    assert usage([str(tmp_path)], stop_after=3)[1] == 4


def test_the_defaults_are_the_documented_ones():
    limits = parse()
    assert (limits.max_output, limits.max_time, limits.max_procs) == (16 << 20, 3600.0, 512)
    assert (limits.max_memory, limits.max_disk, limits.nice, limits.uid) == (0, 4 << 30, 5, None)


@pytest.mark.parametrize("argv, why", [
    (["--nice", "20"], "--nice must be 0..19"),
    (["--max-time", "-1"], "--max-time must be 0 (off) to 1000000000, got -1.0"),
    (["--max-memory", "99999999999999"], "--max-memory must be 0 (off) to 1073741824, got 99999999999999"),
    (["--max-disk", "99999999999999999"], "--max-disk must be 0 (off) to 1073741824"),
    (["--max-time", "nan"], "--max-time must be a number of seconds"),
    (["--max-output", "65537"], "--max-output must be 0 (off) to 65536, got 65537"),
    (["--max-memory", "10"], "--max-memory below 64 MiB"),
    (["--user", "root"], "--user must be an unprivileged user"),
    (["--user", "no-such-user-here"], "no such user"),
])
def test_bad_limit_flags_are_refused_with_a_reason(argv, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse(*argv)


def test_the_action_user_must_be_able_to_reach_the_workdir(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    other = 65534 if os.geteuid() != 65534 else 65533   # not the user running the test
    stranger = Limits(user="stranger", uid=other, gid=other)
    assert "cannot enter" in unreachable(str(closed), stranger)
    assert unreachable(str(closed), NONE) == ""


def test_the_submitter_prints_the_workers_reason_and_a_truncation_note():
    import io

    from submitter.rakefile import parse_rakefile
    from submitter.report import Reporter
    out, err = io.BytesIO(), io.BytesIO()
    action = parse_rakefile("actionset1:\n\tremote-yes\n").actionsets[0].actions[0]
    Reporter(out=out, err=err).action_ended(1, action, "w1", "signalled", 9, b"y\n" * 4, b"", why="killed: disk limit",
                                            truncated=("stdout",))
    assert out.getvalue() == b"y\n" * 4
    assert err.getvalue().decode().splitlines() == [
        "FAILED: [signal=9] yes (actionset 1, line 2, on w1): killed: disk limit",
        "rake: line 2: [stdout truncated at 8 bytes by w1]",
    ]


def test_the_store_copies_an_output_that_is_linked_elsewhere(tmp_path):
    from worker.cache import BlobCache
    cache = BlobCache(str(tmp_path / "cache"), 1 << 20)
    out = tmp_path / "out"
    out.write_bytes(b"data")
    os.link(out, tmp_path / "kept-by-the-action")
    stored = cache.adopt(str(out), hashlib.sha256(b"data").hexdigest(), 4)
    assert os.stat(stored).st_ino != os.stat(tmp_path / "kept-by-the-action").st_ino
    assert not out.exists()


def test_the_store_moves_an_output_that_is_ours_alone(tmp_path):
    from worker.cache import BlobCache
    cache = BlobCache(str(tmp_path / "cache"), 1 << 20)
    out = tmp_path / "out"
    out.write_bytes(b"data")
    inode = out.stat().st_ino
    assert os.stat(cache.adopt(str(out), "cd" * 32, 4)).st_ino == inode


@pytest.mark.skipif(os.geteuid() != 0, reason="handing sandboxes to another user needs root")
def test_a_returned_job_directory_is_ours_again_before_it_is_emptied(tmp_path):
    from worker.execute import JobDirs
    dirs = JobDirs(str(tmp_path))
    jobdir = dirs.take()
    for sub in ("sandbox", "tmp"):   # as hand_over leaves them for a --user action
        os.chown(os.path.join(jobdir, sub), 65534, 65534)
    os.symlink("/etc", os.path.join(jobdir, "sandbox", "planted"))
    assert dirs.give(jobdir)
    for sub in ("sandbox", "tmp"):
        st = os.lstat(os.path.join(jobdir, sub))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    assert os.listdir(os.path.join(jobdir, "sandbox")) == []


def test_only_a_process_limit_asked_for_warns_that_it_needs_user():
    from worker.limits import warnings
    assert warnings(Limits()) == []   # the default: said in the info log, not warned at every start
    assert "--max-procs is enforced only with --user" in warnings(Limits(max_procs=64))[0]
    assert warnings(Limits(max_procs=64, user="u", uid=1000, gid=1000)) == []


def test_an_action_that_cannot_start_for_want_of_processes_names_max_procs_under_user():
    from worker.watch import start_refused
    refused = "cannot run the action: " + os.strerror(errno.EAGAIN)
    as_user = Limits(max_procs=64, user="u", uid=1000, gid=1000)
    assert start_refused(refused, as_user).endswith("are limited to 64: --max-procs)")
    assert start_refused(refused, Limits(max_procs=64)) == ""              # not enforced: not the cause
    assert start_refused("cannot run the action: No such file or directory", as_user) == ""
