"""Tests of sandboxes and output files (worker/sandbox.py, worker/execute.py, submitter/files.py;
SPEC sections 3 and 5), on real temporary directories."""

import hashlib
import os
import time
import shutil
import signal
import stat
import tempfile

import pytest

from submitter.files import OutputRefused, OutputWriter
from rake_common.tree import remove_tree
from worker.execute import Outcome
from worker.runjob import run_job
from worker.sandbox import OutputFile, StagingError, collect_outputs, stage_inputs, staged_as

from tests.procs import as_nobody



def run_as_nobody(job):
    """(status, code) of `job()` called in a forked child that dropped root for uid 65534."""
    out = as_nobody(lambda: [(o := job()).status, o.code])
    return (out[0], out[1]) if out else ("", -1)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree(root):
    """Every entry under `root`, relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def by_path(outputs):
    """Outputs by path, digest and size checked and then left out of the comparison."""
    for o in outputs:
        assert o.data is None or (o.digest == hashlib.sha256(o.data).hexdigest() and o.size == len(o.data))
    return {o.path: OutputFile(o.path, o.mode, o.data) for o in outputs}


# ---- stage_inputs ------------------------------------------------------------------------

def test_staged_inputs_keep_their_sub_directories_contents_and_mode_bits(tmp_path):
    stage_inputs(str(tmp_path), [
        ("main.c", 0o644, b"int main;"),
        ("inc/defs.h", 0o600, b"#define A\n"),
        ("tools/deep/gen.sh", 0o755, b"#!/bin/sh\necho gen\n"),
    ])
    assert (tmp_path / "main.c").read_bytes() == b"int main;"
    assert (tmp_path / "inc" / "defs.h").read_bytes() == b"#define A\n"
    assert mode_of(tmp_path / "main.c") == 0o644
    assert mode_of(tmp_path / "inc" / "defs.h") == 0o600
    assert mode_of(tmp_path / "tools" / "deep" / "gen.sh") == 0o755
    assert os.access(tmp_path / "tools" / "deep" / "gen.sh", os.X_OK)


def test_staging_an_empty_file_and_binary_data_works(tmp_path):
    data = bytes(range(256)) * 100
    stage_inputs(str(tmp_path), [("empty", 0o644, b""), ("bin", 0o644, data)])
    assert (tmp_path / "empty").read_bytes() == b""
    assert (tmp_path / "bin").read_bytes() == data


def test_staging_drops_setuid_and_sticky_bits(tmp_path):
    stage_inputs(str(tmp_path), [("x", 0o4755, b"")])
    assert mode_of(tmp_path / "x") == 0o755


def test_staging_spells_each_name_once(tmp_path):
    snapshot = stage_inputs(str(tmp_path), [("./a//b.c", 0o644, b"x")])
    assert (tmp_path / "a" / "b.c").read_bytes() == b"x"
    assert list(snapshot) == ["a/b.c"]


BAD_NAMES = {
    "absolute": "/etc/passwd",
    "dot-dot": "../escape",
    "inner dot-dot": "a/../../escape",
    "trailing dot-dot": "a/..",
    "empty": "",
    "nul": "a\0b",
    "a directory": "dir/",
    "dot": ".",
}


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_input_name_is_refused_before_anything_is_written(tmp_path, bad):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    files = [("first.c", 0o644, b"1"), ("sub/second.c", 0o644, b"2"), (bad, 0o644, b"evil")]
    with pytest.raises(StagingError):
        stage_inputs(str(sandbox), files)
    assert tree(sandbox) == []
    assert tree(tmp_path) == ["sandbox"]


@pytest.mark.parametrize("a, b", [("x.c", "x.c"), ("d/x.c", "./d//x.c")])
def test_the_same_input_name_twice_is_refused_before_anything_is_written(tmp_path, a, b):
    with pytest.raises(StagingError):
        stage_inputs(str(tmp_path), [("other", 0o644, b""), (a, 0o644, b"1"), (b, 0o644, b"2")])
    assert tree(tmp_path) == []


def test_an_input_that_is_also_a_directory_of_another_is_refused(tmp_path):
    with pytest.raises(StagingError):
        stage_inputs(str(tmp_path), [("a", 0o644, b"file"), ("a/b", 0o644, b"inside")])


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


# ---- run_job -----------------------------------------------------------------------------

def run(tmp_path, command, files=(), timeout=None):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return run_job(("sub", 1), command, list(files), str(root), "w1", timeout)


@pytest.mark.timeout(30)
def test_run_job_captures_stdout_and_stderr_separately(tmp_path):
    out = run(tmp_path, "echo to-out; echo to-err >&2")
    assert isinstance(out, Outcome)
    assert (out.status, out.code) == ("exited", 0)
    assert (out.stdout, out.stderr) == (b"to-out\n", b"to-err\n")
    assert out.elapsed > 0


@pytest.mark.timeout(30)
def test_run_job_output_is_raw_bytes(tmp_path):
    out = run(tmp_path, r"printf '\377\376\000x'")
    assert out.stdout == b"\xff\xfe\x00x"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("code", [1, 2, 42, 255])
def test_run_job_reports_the_exit_code(tmp_path, code):
    out = run(tmp_path, f"exit {code}")
    assert (out.status, out.code) == ("exited", code)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV])
def test_run_job_reports_death_by_signal(tmp_path, sig):
    out = run(tmp_path, f"kill -{int(sig)} $$")
    assert (out.status, out.code) == ("signalled", int(sig))


@pytest.mark.timeout(60)
def test_five_megabytes_on_stdout_and_stderr_do_not_deadlock(tmp_path):
    size = 5 * 1024 * 1024
    out = run(tmp_path, f"head -c {size} /dev/zero; head -c {size} /dev/zero | tr '\\0' e >&2")
    assert out.status == "exited" and out.code == 0
    assert len(out.stdout) == size and len(out.stderr) == size
    assert set(out.stderr) == {ord("e")}


@pytest.mark.timeout(30)
def test_run_job_runs_in_a_sandbox_holding_only_its_inputs(tmp_path):
    out = run(tmp_path, "find . | sort; pwd; echo $PWD",
              files=[("a.c", 0o644, b"x"), ("inc/b.h", 0o644, b"y")])
    lines = out.stdout.decode().splitlines()
    assert lines[:4] == [".", "./a.c", "./inc", "./inc/b.h"]
    sandbox = lines[4]
    assert lines[5] == sandbox
    assert sandbox.startswith(str(tmp_path / "root"))


@pytest.mark.timeout(30)
def test_run_job_returns_outputs_in_sub_directories_with_mode_bits(tmp_path):
    out = run(tmp_path, "mkdir -p out/deep && cat in.txt in.txt > out/deep/twice && "
                        "printf '#!/bin/sh\\n' > tool && chmod 755 tool",
              files=[("in.txt", 0o644, b"ab")])
    assert out.status == "exited" and out.code == 0, out.stderr
    assert by_path(out.outputs) == {
        "out/deep/twice": OutputFile("out/deep/twice", 0o644, b"abab"),
        "tool": OutputFile("tool", 0o755, b"#!/bin/sh\n"),
    }


@pytest.mark.timeout(30)
def test_run_job_can_run_an_executable_input(tmp_path):
    out = run(tmp_path, "./gen.sh", files=[("gen.sh", 0o755, b"#!/bin/sh\necho generated\n")])
    assert (out.status, out.stdout) == ("exited", b"generated\n")


@pytest.mark.timeout(30)
def test_a_failed_command_still_returns_its_outputs(tmp_path):
    out = run(tmp_path, "echo partial > log; exit 3")
    assert (out.status, out.code) == ("exited", 3)
    assert [(o.path, o.data) for o in out.outputs] == [("log", b"partial\n")]


@pytest.mark.timeout(30)
def test_the_sandbox_is_removed_afterwards(tmp_path):
    run(tmp_path, "mkdir -p a/b/c && echo x > a/b/c/f && mkfifo p && ln -s /etc l")
    run(tmp_path, "exit 1")
    assert os.listdir(tmp_path / "root") == []


@pytest.mark.timeout(60)
def test_the_sandbox_is_removed_even_when_the_job_made_a_directory_read_only(tmp_path):
    command = "mkdir -p a/b && echo x > a/b/f && chmod 500 a/b a"
    if os.geteuid() != 0:
        root = tmp_path / "root"
        root.mkdir()
        run(tmp_path, command)
        left = os.listdir(root)
    else:
        # As root every file can be removed anyway: run the job as an unprivileged user.
        root = tempfile.mkdtemp(prefix="rake-test-")
        try:
            os.chmod(root, 0o777)
            assert run_as_nobody(lambda: run_job(("sub", 1), command, [], root, "w1", None)) == ("exited", 0)
            left = os.listdir(root)
        finally:
            shutil.rmtree(root)
    assert left == []


@pytest.mark.timeout(30)
def test_a_bad_input_name_is_an_error_outcome_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    out = run(tmp_path, f"touch {marker}", files=[("../evil", 0o644, b"x")])
    assert out.status == "error" and "evil" in out.error
    assert not marker.exists()
    assert os.listdir(tmp_path / "root") == []


@pytest.mark.timeout(30)
def test_a_timeout_is_reported_as_timeout_and_the_process_group_is_killed(tmp_path):
    pidfile = tmp_path / "pid"
    out = run(tmp_path, f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    assert out.status == "timeout"
    assert out.elapsed < 20
    pid = int(pidfile.read_text())

    def gone() -> bool:
        # The background sleep was in the job's process group: gone, or a zombie at most
        # (SIGKILL takes effect asynchronously, so give a loaded machine a moment).
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    deadline = time.monotonic() + 5
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()
    assert os.listdir(tmp_path / "root") == []


@pytest.mark.timeout(30)
def test_the_job_environment_is_minimal(tmp_path, monkeypatch):
    monkeypatch.setenv("RAKE_TEST_SECRET", "leak")
    out = run(tmp_path, "env")
    env = dict(line.split("=", 1) for line in out.stdout.decode().splitlines() if "=" in line)
    assert "RAKE_TEST_SECRET" not in env
    assert env["RAKE_WORKER"] == "w1"
    assert env["HOME"] == env["TMPDIR"] != env["PWD"]   # ~/.gitconfig, ~/.cache never come back


# ---- OutputWriter ------------------------------------------------------------------------

def test_output_writer_writes_contents_and_mode_bits(tmp_path):
    w = OutputWriter(str(tmp_path))
    assert w.write("prog", 0o755, b"\x7fELF", line=3) == "prog"
    w.write("obj/deep/x.o", 0o600, memoryview(b"object"), line=4)
    assert (tmp_path / "prog").read_bytes() == b"\x7fELF"
    assert mode_of(tmp_path / "prog") == 0o755
    assert os.access(tmp_path / "prog", os.X_OK)
    assert (tmp_path / "obj" / "deep" / "x.o").read_bytes() == b"object"
    assert mode_of(tmp_path / "obj" / "deep" / "x.o") == 0o600


def test_the_umask_is_read_without_being_changed():
    from submitter.files import current_umask
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_directories_made_for_outputs_follow_the_umask_as_mkdir_p_does(tmp_path):
    old = os.umask(0o002)
    try:
        OutputWriter(str(tmp_path)).write("team/sub/f", 0o664, b"x", line=2)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "team") == mode_of(tmp_path / "team" / "sub") == 0o775


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another group needs root or membership")
def test_a_download_placed_in_a_setgid_directory_takes_its_group_as_a_file_written_there_does(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 100)
    os.chmod(shared, 0o2775)
    download = tmp_path / "download"
    download.write_bytes(b"big")
    os.chown(download, -1, 0)
    w = OutputWriter(str(tmp_path))
    w.place("shared/big", 0o644, str(download), line=2)
    w.write("shared/small", 0o644, b"s", line=2)
    assert os.stat(shared / "big").st_gid == os.stat(shared / "small").st_gid == 100


def test_output_writer_writes_a_name_of_the_longest_length_the_file_system_allows(tmp_path):
    name = "n" * 240 + "é" * 7   # 254 bytes: no room left to build a temporary name on it
    OutputWriter(str(tmp_path)).write(f"sub/{name}", 0o644, b"x", line=2)
    assert (tmp_path / "sub" / name).read_bytes() == b"x"
    assert os.listdir(tmp_path / "sub") == [name]


def test_staged_names_of_one_action_never_collide_however_the_random_bytes_fall(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)   # as two draws of 32 bits may
    w = OutputWriter(str(tmp_path))
    for name in ("out/a", "out/b", "out/c"):
        w.stage(name, 0o644, line=2, data=name.encode())
    w.commit()
    assert [(tmp_path / n).read_bytes() for n in ("out/a", "out/b", "out/c")] == [b"out/a", b"out/b", b"out/c"]


def test_output_writer_leaves_no_temporary_files(tmp_path):
    w = OutputWriter(str(tmp_path))
    w.write("a", 0o644, b"1", line=1)
    w.write("d/b", 0o644, b"", line=2)
    assert tree(tmp_path) == ["a", "d", "d/b"]


def test_output_writer_replaces_an_existing_file_by_rename(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old contents")
    old_inode = os.stat(target).st_ino
    # Someone holding the old file open still sees the old contents: it was replaced, not rewritten.
    with open(target, "rb") as held:
        OutputWriter(str(tmp_path)).write("out.txt", 0o644, b"new", line=1)
        assert held.read() == b"old contents"
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_ino != old_inode


def test_output_writer_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "victim", root / "out")
    OutputWriter(str(root)).write("out", 0o644, b"evil", line=1)
    assert (outside / "victim").read_bytes() == b"precious"
    assert not os.path.islink(root / "out") and (root / "out").read_bytes() == b"evil"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../up", "a/../../up", "a/..", "", "x\0y", "dir/"])
def test_output_writer_refuses_names_outside_the_working_directory(tmp_path, bad):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(OutputRefused):
        OutputWriter(str(root)).write(bad, 0o644, b"x", line=1)
    assert tree(tmp_path) == ["root"]


@pytest.mark.parametrize("via", ["link/f", "link/sub/f", "real/link/f"])
def test_output_writer_refuses_to_write_through_a_symlinked_directory(tmp_path, via):
    canary = tmp_path / "canary"
    canary.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "real").mkdir()
    os.symlink(canary, root / "link")
    os.symlink(canary, root / "real" / "link")
    with pytest.raises(OutputRefused):
        OutputWriter(str(root)).write(via, 0o644, b"escaped", line=1)
    assert os.listdir(canary) == []


def test_output_writer_refuses_a_file_in_the_way_of_a_directory(tmp_path):
    (tmp_path / "a").write_bytes(b"file")
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("a/b", 0o644, b"x", line=1)
    assert (tmp_path / "a").read_bytes() == b"file"


def test_output_writer_refuses_a_directory_in_the_way_of_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_bytes(b"k")
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("d", 0o644, b"x", line=1)
    (tmp_path / "d" / "out").mkdir()
    with pytest.raises(OutputRefused, match="'d/out': a directory is in the way"):   # the whole path
        OutputWriter(str(tmp_path)).write("d/out", 0o644, b"x", line=1)
    assert tree(tmp_path) == ["d", "d/keep", "d/out"]


def test_output_writer_refuses_the_same_path_from_two_actions(tmp_path):
    w = OutputWriter(str(tmp_path))
    w.write("out/x.o", 0o644, b"first", line=5)
    with pytest.raises(OutputRefused) as err:
        w.write("./out//x.o", 0o644, b"second", line=9)
    assert "out/x.o" in str(err.value) and "5" in str(err.value) and "9" in str(err.value)
    assert (tmp_path / "out" / "x.o").read_bytes() == b"first"


@pytest.mark.parametrize("first, second, message", [
    ("gen", "gen/x", "cannot write 'gen/x': output 'gen' of line 5 is a file, not a directory"),
    ("gen/sub/x", "gen", "cannot write 'gen': it is also the directory of an output of line 5"),
])
def test_a_file_and_a_directory_of_one_name_from_two_actions_name_the_other_line(tmp_path, first, second, message):
    w = OutputWriter(str(tmp_path))
    w.write(first, 0o644, b"first", line=5)
    with pytest.raises(OutputRefused, match=message):
        w.write(second, 0o644, b"second", line=9)
    assert (tmp_path / first).read_bytes() == b"first"


@pytest.mark.parametrize("order", [["x", "a", "a/b"], ["x", "a/b", "a"], ["a/b/c", "x", "a/b"]])
def test_an_action_whose_outputs_are_a_file_and_a_directory_of_one_name_writes_nothing(tmp_path, order):
    """All of an action's outputs or none: `a` and `a/b` cannot both land, so neither does `x`,
    and no directory made for staging them is left behind."""
    (tmp_path / "keep").write_bytes(b"k")
    w = OutputWriter(str(tmp_path))
    with pytest.raises(OutputRefused) as err:
        for path in order:
            w.stage(path, 0o644, 7, data=path.encode())
    w.abort()
    clash = sorted(p for p in order if p != "x")
    assert all(repr(p) in str(err.value) for p in clash), err.value
    assert "same action" in str(err.value)
    assert tree(tmp_path) == ["keep"]
    assert w.write("a/b", 0o644, b"later", line=8) == "a/b"   # nothing of the refused one lingers


def test_a_directory_made_for_an_output_that_then_cannot_be_written_is_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "out").mkdir()   # a directory in the way of the second output
    w = OutputWriter(str(tmp_path))
    w.stage("new/deep/first", 0o644, 3, data=b"1")
    with pytest.raises(OutputRefused, match="a directory is in the way"):
        w.stage("sub/out", 0o644, 3, data=b"2")
    w.abort()
    assert tree(tmp_path) == ["sub", "sub/out"]


@pytest.mark.timeout(30)
def test_a_command_that_exec_cannot_take_is_an_error_outcome_not_a_crash(tmp_path):
    out = run(tmp_path, "echo a\0b")
    assert out.status == "error" and "null" in out.error


@pytest.mark.timeout(30)
def test_an_action_cannot_end_its_workers_namespace_with_sigint(tmp_path):
    from worker.isolation import open_spawner
    try:
        namespace = open_spawner("pidns", lambda s: None)
    except OSError as e:
        pytest.skip(f"no PID namespace here: {e}")
    try:
        root = tmp_path / "root"
        root.mkdir()
        first = run_job(("sub", 1), "kill -INT 1; echo alive", [], str(root), "w1", 10, spawner=namespace)
        second = run_job(("sub", 2), "echo next", [], str(root), "w1", 10, spawner=namespace)
        assert (first.status, first.stdout) == ("exited", b"alive\n")
        assert second.stdout == b"next\n" and not namespace.dead
    finally:
        namespace.close()


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


def run_in(jobs, key, command):
    """One job through a long-lived Jobs (directories and capture files reused), to its end."""
    import select
    done = jobs.start(key, command, [], 10, time.monotonic())
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        ready, _, _ = select.select(jobs.fds(), [], [], 1)
        for fd in ready:
            for exit in jobs.on_readable(fd):
                done += jobs.finish(exit)
    jobs.tidy()
    [(_, outcome)] = done
    return outcome


def test_a_reused_job_directory_gives_each_job_only_its_own_output(tmp_path):
    """Capture files are kept per job directory and emptied, not reopened, between jobs."""
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        got = [run_in(jobs, ("sub", n), command) for n, command in enumerate(
            ["printf 'a long first output'; printf 'err one' >&2", "printf x", "true"])]
        assert [(o.stdout, o.stderr) for o in got] == [
            (b"a long first output", b"err one"), (b"x", b""), (b"", b"")]
        assert len(jobs.captures) == 1   # one job directory served all three
    finally:
        jobs.close()


def test_a_finished_jobs_captured_output_is_freed_at_once_not_when_its_directory_is_reused(tmp_path):
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        got = run_in(jobs, ("sub", 1), "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2")
        assert (len(got.stdout), len(got.stderr)) == (3000000, 2000000)
        [files] = jobs.captures.values()   # kept for the next job, but holding nothing
        assert [os.fstat(f.fileno()).st_size for f in files] == [0, 0]
        assert run_in(jobs, ("sub", 2), "printf x; printf y >&2").stdout == b"x"
    finally:
        jobs.close()


def test_a_job_that_locks_its_directories_does_not_lock_out_the_next_job(tmp_path):
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        run_in(jobs, ("sub", 1), 'chmod 555 .; chmod 500 "$TMPDIR"')
        after = run_in(jobs, ("sub", 2), 'echo x > f && mktemp >/dev/null && stat -c %a . "$TMPDIR"')
        assert (after.status, after.code, after.stdout.split()) == ("exited", 0, [b"700", b"700"]), after
        assert len(jobs.captures) == 1   # the same directory, reused
    finally:
        jobs.close()


def test_an_action_with_thousands_of_outputs_holds_a_descriptor_per_directory_not_per_file(tmp_path):
    w = OutputWriter(str(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(3000):
        w.stage(f"out{i % 3}/f{i}", 0o644, 2, data=b"x")
    assert len(os.listdir("/proc/self/fd")) - before <= 3
    assert len(w.commit()) == 3000 and len(os.listdir("/proc/self/fd")) == before
    assert len(os.listdir(tmp_path / "out1")) == 1000 and (tmp_path / "out1" / "f2998").read_bytes() == b"x"


def test_an_action_writing_into_thousands_of_directories_keeps_few_open(tmp_path):
    w = OutputWriter(str(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(1100):
        w.stage(f"d{i}/out.o", 0o644, 2, data=b"o")
    assert len(os.listdir("/proc/self/fd")) - before <= 64
    assert len(w.commit()) == 1100 and (tmp_path / "d1099" / "out.o").read_bytes() == b"o"
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_refused_single_write_leaves_no_directory_open(tmp_path):
    (tmp_path / "sub" / "x").mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("sub/x", 0o644, b"data", line=1)
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.timeout(30)
def test_outputs_whose_names_are_not_utf8_are_returned_under_those_bytes(tmp_path):
    out = run(tmp_path, "printf x > \"$(printf 'bad\\377name')\"; mkdir \"$(printf 'd\\377')\"; "
                        "echo y > \"$(printf 'd\\377')/f\"")
    assert sorted((os.fsencode(o.path), o.data) for o in out.outputs) == [(b"bad\xffname", b"x"), (b"d\xff/f", b"y\n")]
    assert out.skipped == []


@pytest.mark.timeout(30)
def test_a_directory_too_deep_to_list_is_reported_not_dropped_silently(tmp_path):
    deep = "; ".join(["mkdir " + "d" * 200 + " && cd " + "d" * 200] * 22)
    out = run(tmp_path, f"({deep} && echo deep > f.txt); echo top > top.txt")
    assert [o.path for o in out.outputs] == ["top.txt"]
    assert len(out.skipped) == 1 and "directory not returned, cannot be read (File name too long)" in out.skipped[0]


@pytest.mark.timeout(30)
def test_what_a_tool_keeps_under_home_is_not_an_output(tmp_path):
    out = run(tmp_path, 'mkdir -p "$HOME/.cache/x" && echo c > "$HOME/.cache/x/c" && echo g > ~/.gitconfig && echo o > out.txt')
    assert [o.path for o in out.outputs] == ["out.txt"]
