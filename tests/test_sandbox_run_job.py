"""Running one job in a sandbox (worker/runjob.py run_job): streams, codes, outputs, clean-up."""

import os
import time
import shutil
import signal
import tempfile

import pytest

from worker.execute import Outcome
from worker.runjob import run_job
from worker.sandbox import OutputFile

from tests.procs import as_nobody
from tests.sandbox_helpers import by_path


def run_as_nobody(job):
    """(status, code) of `job()` called in a forked child that dropped root for uid 65534."""
    out = as_nobody(lambda: [(o := job()).status, o.code])
    return (out[0], out[1]) if out else ("", -1)


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
