"""Bad input must never cost the user a file or end in a traceback: a broker's ipc:// path
that names an existing regular file, and a "Rakefile" that never ends (`-f /dev/zero`)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.procs import command, rake_env

pytestmark = pytest.mark.timeout(30)


def test_broker_refuses_an_ipc_path_that_is_a_regular_file(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n")
    res = subprocess.run(command("rake-broker") + ["--bind", f"ipc://{victim}"], env=rake_env(),
                         capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert "not a socket" in res.stderr and str(victim) in res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert victim.read_text() == "precious\n"


def test_broker_removes_a_relative_ipc_path_when_it_stops(procs, tmp_path):
    proc = procs.start(command("rake-broker") + ["--bind", "ipc://rel.sock", "-q"], cwd=tmp_path,
                       stdout=subprocess.PIPE)
    assert proc.stdout.readline().decode().strip() == "ipc://rel.sock"
    assert (tmp_path / "rel.sock").exists()
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert not (tmp_path / "rel.sock").exists()


def test_a_rakefile_that_never_ends_is_a_usage_error_not_a_memory_error(tmp_path):
    res = subprocess.run(command("rake-submit") + ["-f", "/dev/zero"], env=rake_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=25, stdin=subprocess.DEVNULL,
                         preexec_fn=lambda: __import__("resource").setrlimit(
                             __import__("resource").RLIMIT_AS, (3 << 30, 3 << 30)))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().endswith("/dev/zero: larger than 256 MiB: not a Rakefile")


def test_a_hundred_missing_required_files_give_fifty_lines_and_a_count(tmp_path):
    names = "x" * 5000 + " " + " ".join(f"f{i}" for i in range(100))
    (tmp_path / "Rakefile").write_text(f"actionset1:\n\ttrue\n\t\trequires {names}\n")
    res = subprocess.run(command("rake-submit"), env=rake_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=25, stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].endswith("... (5000 characters) cannot be read (File name too long) (needed by: true)")
    assert lines[1] == "rake: error: actionset 1, line 3: required file 'f0' does not exist (needed by: true)"
    assert lines[50] == "rake: error: actionset 1: ... and 51 more required files missing or refused"
    assert len(lines) <= 52 and max(map(len, lines)) < 400


@pytest.mark.parametrize("joblog", ["Rakefile", "./in.txt"])
def test_a_job_log_named_like_the_rakefile_or_an_input_is_refused_and_nothing_is_emptied(tmp_path, joblog):
    rakefile = "actionset1:\n\tcat in.txt\n\t\trequires in.txt\n"
    (tmp_path / "Rakefile").write_text(rakefile)
    (tmp_path / "in.txt").write_text("keep me\n")
    res = subprocess.run(command("rake-submit") + ["--joblog", joblog], env=rake_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=25, stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert f"--joblog {joblog} is" in res.stderr and "refusing to overwrite it" in res.stderr
    assert (tmp_path / "Rakefile").read_text() == rakefile and (tmp_path / "in.txt").read_text() == "keep me\n"


@pytest.mark.timeout(30)
def test_file_and_directory_names_with_newlines_or_bytes_not_utf8_stay_on_one_line_in_errors(tmp_path):
    ff = os.fsdecode(b"\xff")   # a byte that is not UTF-8
    odd = tmp_path / f"odd{ff}\nname"
    odd.parent.mkdir(exist_ok=True)
    cases = [(["-C", str(tmp_path / f"no\nsuch{ff}")], b"cannot change to "),
             (["-f", str(tmp_path / f"no\nsuch{ff}")], b"cannot read ")]
    odd.write_text("actionset1:\nfoo\n")
    cases.append((["-f", str(odd)], b":2: unknown directive"))
    for args, what in cases:
        res = subprocess.run(command("rake-submit") + args, env=rake_env(), cwd=tmp_path,
                             capture_output=True, timeout=20)
        assert res.returncode == 2, res.stderr
        [line] = res.stderr.splitlines()
        assert what in line and b"\\n" in line and b"\\xff" in line, line
