"""Collecting a job's outputs from its sandbox (worker/sandbox.py collect_outputs), changes and races."""

import hashlib
import os
import stat
import tempfile

import pytest

from rake_common.tree import remove_tree
from worker.sandbox import OutputFile, collect_outputs, stage_inputs, staged_as

from tests.sandbox_helpers import by_path


# ---- collect_outputs ---------------------------------------------------------------------

def test_an_input_a_thousand_directories_deep_is_staged(tmp_path):
    deep = "/".join(["d"] * 1200) + "/f"   # os.makedirs would recurse past Python's limit
    (tmp_path / "s").mkdir()
    try:
        stage_inputs(str(tmp_path / "s"), [(deep, 0o644, b"x")])
        assert (tmp_path / "s" / deep).read_bytes() == b"x"
    finally:
        remove_tree(str(tmp_path / "s"))   # pytest's own clean-up would recurse too deep
    assert not (tmp_path / "s").exists()


def test_created_files_come_back_with_their_mode_bits_and_inputs_do_not(tmp_path):
    snap = stage_inputs(str(tmp_path), [("in.c", 0o644, b"src"), ("inc/in.h", 0o644, b"hdr")])
    (tmp_path / "prog").write_bytes(b"\x7fELF")
    os.chmod(tmp_path / "prog", 0o755)
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj" / "in.o").write_bytes(b"object")
    os.chmod(tmp_path / "obj" / "in.o", 0o640)
    outputs, skipped = collect_outputs(str(tmp_path), snap)
    assert by_path(outputs) == {
        "prog": OutputFile("prog", 0o755, b"\x7fELF"),
        "obj/in.o": OutputFile("obj/in.o", 0o640, b"object"),
    }
    assert skipped == []


def test_a_modified_input_comes_back(tmp_path):
    snap = stage_inputs(str(tmp_path), [("version.h", 0o644, b"v1"), ("same.h", 0o644, b"x")])
    with open(tmp_path / "version.h", "ab") as fh:
        fh.write(b"+v2")
    outputs, _ = collect_outputs(str(tmp_path), snap)
    assert [(o.path, o.data) for o in outputs] == [("version.h", b"v1+v2")]


def test_a_rewrite_with_the_same_size_and_a_forged_mtime_still_comes_back(tmp_path):
    snap = stage_inputs(str(tmp_path), [("data", 0o644, b"AAAA")])
    before = os.stat(tmp_path / "data")
    with open(tmp_path / "data", "r+b") as fh:
        fh.write(b"BBBB")
    os.utime(tmp_path / "data", ns=(before.st_atime_ns, before.st_mtime_ns))
    outputs, _ = collect_outputs(str(tmp_path), snap)
    assert [(o.path, o.data) for o in outputs] == [("data", b"BBBB")]


def test_an_input_replaced_by_a_new_file_comes_back(tmp_path):
    snap = stage_inputs(str(tmp_path), [("f", 0o644, b"old!")])
    (tmp_path / "f.new").write_bytes(b"new!")
    os.replace(tmp_path / "f.new", tmp_path / "f")
    outputs, _ = collect_outputs(str(tmp_path), snap)
    assert [(o.path, o.data) for o in outputs] == [("f", b"new!")]


def test_a_chmodded_input_comes_back_with_its_new_mode(tmp_path):
    snap = stage_inputs(str(tmp_path), [("run.sh", 0o644, b"echo")])
    os.chmod(tmp_path / "run.sh", 0o755)
    [out], _ = collect_outputs(str(tmp_path), snap)
    assert (out.path, out.mode) == ("run.sh", 0o755)


def test_an_input_touched_but_left_as_it_was_does_not_come_back(tmp_path):
    files = [("run.sh", 0o755, b"echo"), ("in.c", 0o644, b"src"), ("cfg.h", 0o644, b"x"), ("v.h", 0o644, b"1")]
    digests = [hashlib.sha256(data).hexdigest() for _, _, data in files]
    snap = stage_inputs(str(tmp_path), files)
    os.chmod(tmp_path / "run.sh", 0o755)                  # chmod +x of an executable
    os.link(tmp_path / "in.c", tmp_path / "copy.c")        # a new link: its ctime moves
    (tmp_path / "cfg.h").write_bytes(b"x")                 # a sed -i that changed nothing
    (tmp_path / "v.h").write_bytes(b"2")                   # changed: comes back
    outputs, skipped = collect_outputs(str(tmp_path), snap, inputs=staged_as(files, digests))
    assert sorted(o.path for o in outputs) == ["copy.c", "v.h"] and skipped == []


def test_an_output_deeper_than_path_max_with_the_workdir_is_skipped_saying_so_not_a_job_failure(tmp_path):
    from worker.sandbox import scan_outputs
    sandbox = tmp_path / "s"
    sandbox.mkdir()
    fd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
    try:   # 19 levels of 200 bytes and a 240-byte name: 4059 bytes relative, past 4096 in all
        for _ in range(19):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("g" * 240, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        found, skipped = scan_outputs(str(sandbox), {})
        assert found == [] and len(skipped) == 1 and "not returned, cannot be read here" in skipped[0]
        assert len(skipped[0]) < 300
    finally:
        remove_tree(str(sandbox))


def test_an_output_the_worker_itself_cannot_open_fails_the_job_rather_than_go_missing(tmp_path, monkeypatch):
    # No descriptor left (EMFILE): the outputs were dropped as "unreadable", the run exited 0.
    import errno
    import worker.sandbox
    (tmp_path / "a.out").write_bytes(b"a")
    found = worker.sandbox.scan_outputs(str(tmp_path), {})
    for code, lost in ((errno.EACCES, True), (errno.EMFILE, False)):
        def refuse(root, rel, code=code):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(worker.sandbox, "open_beneath", refuse)
        if lost:   # the action's doing: that file is not returned, with a warning
            assert collect_outputs(str(tmp_path), {}, found=found) == ([], ["a.out: unreadable (Permission denied)"])
        else:      # the worker's: the job is an error, retried elsewhere
            with pytest.raises(OSError, match="Too many open files"):
                collect_outputs(str(tmp_path), {}, found=found)


def test_an_output_that_changes_between_the_scan_and_its_collection_is_not_returned(tmp_path):
    from worker.sandbox import scan_outputs
    (tmp_path / "grows").write_bytes(b"x" * 10)
    (tmp_path / "stays").write_bytes(b"y")
    found = scan_outputs(str(tmp_path), {})
    with open(tmp_path / "grows", "ab") as fh:   # something left running appends to it
        fh.write(b"z" * 1000)
    outputs, skipped = collect_outputs(str(tmp_path), {}, found=found)
    assert [o.path for o in outputs] == ["stays"]
    assert skipped == ["grows: not returned, it changed while it was collected"]


def test_a_user_worker_takes_new_capture_files_for_each_job_and_others_reuse_them(tmp_path):
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    from worker.limits import NONE, Limits
    as_user = Jobs(JobDirs(str(tmp_path)), "w1", None, None, limits=Limits(user="65534", uid=65534, gid=65534))
    assert as_user.captures.reuse is False and Jobs(JobDirs(str(tmp_path)), "w1", limits=NONE).captures.reuse


def test_a_user_workers_captured_output_files_are_new_for_each_job():
    from worker.captures import Captures
    with tempfile.TemporaryDirectory() as d:
        for reuse in (True, False):
            captures = Captures(reuse=reuse)
            first = captures.open("job-1", d)
            captures.empty("job-1")
            assert (captures.open("job-1", d) is first) == reuse
            captures.close()


def test_symlinks_to_files_and_directories_are_reported_and_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not send")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    snap = stage_inputs(str(sandbox), [])
    os.symlink(outside / "secret", sandbox / "file-link")
    os.symlink(outside, sandbox / "dir-link")
    os.symlink("nowhere", sandbox / "dangling")
    (sandbox / "sub").mkdir()
    os.symlink(outside, sandbox / "sub" / "deep-dir-link")
    (sandbox / "real").write_bytes(b"ok")
    outputs, skipped = collect_outputs(str(sandbox), snap)
    assert [o.path for o in outputs] == ["real"]
    assert all(b"do not send" not in o.data for o in outputs)
    for name in ("file-link", "dir-link", "dangling", "sub/deep-dir-link"):
        assert any(s.startswith(f"{name}:") and "symlink" in s for s in skipped), (name, skipped)
    assert len(skipped) == 4


def test_a_fifo_is_reported_as_skipped_without_being_opened(tmp_path):
    snap = stage_inputs(str(tmp_path), [])
    os.mkfifo(tmp_path / "pipe")      # opening it for reading would block forever
    (tmp_path / "out").write_bytes(b"x")
    outputs, skipped = collect_outputs(str(tmp_path), snap)
    assert [o.path for o in outputs] == ["out"]
    assert len(skipped) == 1 and skipped[0].startswith("pipe:")


def test_nothing_changed_means_nothing_comes_back(tmp_path):
    snap = stage_inputs(str(tmp_path), [("a", 0o644, b"1"), ("b/c", 0o755, b"2")])
    assert collect_outputs(str(tmp_path), snap) == ([], [])


def test_an_output_swapped_for_a_symlink_after_hashing_is_refused_not_followed(tmp_path):
    from worker.cache import BlobCache
    secret = tmp_path / "secret"
    secret.write_bytes(b"TOPSECRET")
    os.chmod(secret, 0o600)
    out = tmp_path / "out.bin"
    out.write_bytes(b"what was hashed")
    hashed = os.stat(out)
    out.unlink()
    os.symlink(secret, out)          # swapped by a process the action left behind
    cache = BlobCache(str(tmp_path / "cache"), 1 << 20)
    digest = hashlib.sha256(b"what was hashed").hexdigest()
    with pytest.raises(OSError):
        cache.adopt(str(out), digest, 15, hashed)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert not cache.has(digest)


def test_a_directory_swapped_for_a_link_after_the_scan_takes_nothing_from_where_it_points(tmp_path):
    # A leftover of the action swaps `d` for a link to a directory only root may read, after
    # the scan: the root worker must neither return nor move (remove) the file there.
    from worker.cache import BlobCache
    from worker.sandbox import scan_outputs
    rootonly = tmp_path / "rootonly"
    rootonly.mkdir(mode=0o700)
    (rootonly / "shadow").write_bytes(b"ROOT-ONLY")
    sandbox = tmp_path / "sandbox"
    (sandbox / "d").mkdir(parents=True)
    (sandbox / "d" / "shadow").write_bytes(b"harmless")
    found = scan_outputs(str(sandbox), {})
    os.rename(sandbox / "d", sandbox / "x")
    os.symlink(rootonly, sandbox / "d")
    cache = BlobCache(str(tmp_path / "cache"), 1 << 20)
    outputs, skipped = collect_outputs(str(sandbox), {}, cache, found=found)
    assert outputs == [] and any(s.startswith("d/shadow: unreadable") for s in skipped), skipped
    assert (rootonly / "shadow").read_bytes() == b"ROOT-ONLY"


@pytest.mark.timeout(10)
def test_an_output_swapped_for_a_fifo_after_the_scan_is_skipped_without_blocking(tmp_path):
    from worker.sandbox import scan_outputs
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "f").write_bytes(b"data")
    found = scan_outputs(str(sandbox), {})
    (sandbox / "f").unlink()
    os.mkfifo(sandbox / "f")   # nobody will ever write to it
    outputs, skipped = collect_outputs(str(sandbox), {}, None, found=found)
    assert outputs == [] and skipped == ["f: not returned, it was replaced while it was collected"]
