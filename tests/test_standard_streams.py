"""Programs started with a standard stream closed (`2>&-`, `>&-`) or unwritable (a full
disk): the daemons keep serving, the tools say so in one line, nothing dies with a traceback."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time

import pytest

from tests.procs import command, rake_env, wait_until


def shell(args: list[str], redirect: str) -> list[str]:
    return ["sh", "-c", f"exec {shlex.join(args)} {redirect}"]


@pytest.mark.timeout(60)
def test_a_broker_and_a_worker_started_with_stderr_closed_keep_serving(procs, tmp_path):
    broker = procs.start(shell(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], "2>&-"),
                         stdout=subprocess.PIPE)
    endpoint = broker.stdout.readline().decode().strip()
    worker = procs.start(shell(command("rake-worker") + ["--broker", endpoint, "--workdir", str(tmp_path / "wd")],
                               "2>&-"))
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-echo hi\n")
    res = subprocess.run(command("rake-submit") + ["--broker", endpoint], cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=40)
    assert (res.returncode, res.stdout) == (0, b"hi\n"), res.stderr
    assert broker.poll() is None and worker.poll() is None


@pytest.mark.timeout(60)
def test_a_broker_whose_endpoint_line_cannot_be_written_still_serves(procs, tmp_path):
    log = tmp_path / "broker.log"
    with open("/dev/full", "wb") as full, log.open("wb") as err:
        broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], stdout=full, stderr=err)
    assert wait_until(lambda: "serving tcp://" in log.read_text(), 15), log.read_text()
    assert "cannot write the endpoint to stdout (No space left on device)" in log.read_text()
    endpoint = re.search(r"serving (tcp://\S+)", log.read_text())[1]
    procs.worker(endpoint, "w1", tmp_path / "wd")
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-echo hi\n")
    res = subprocess.run(command("rake-submit") + ["--broker", endpoint], cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=40)
    assert (res.returncode, res.stdout) == (0, b"hi\n"), res.stderr
    assert broker.poll() is None and "Traceback" not in log.read_text()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("action, status", [("echo hi", 1), ("true", 0)])
def test_rake_submit_with_stdout_closed_fails_only_when_it_has_output_for_it(tmp_path, action, status):
    (tmp_path / "Rakefile").write_text(f"actionset1:\n\t{action}\n")
    res = subprocess.run(shell(command("rake-submit"), ">&-"), cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=40)
    assert res.returncode == status, res.stderr
    assert (b"rake: error: cannot write to stdout: Bad file descriptor" in res.stderr) == (status == 1)
    assert b"Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_rake_keygen_and_rake_status_say_in_one_line_that_stdout_is_full(procs, tmp_path):
    with open("/dev/full", "wb") as full:
        keygen = subprocess.run(command("rake-keygen") + [str(tmp_path / "keys"), "k"], stdout=full,
                                stderr=subprocess.PIPE, env=rake_env(), timeout=30)
        _, endpoint = procs.broker()
        status = subprocess.run(command("rake-status") + ["--broker", endpoint], stdout=full,
                                stderr=subprocess.PIPE, env=rake_env(), timeout=30)
    assert keygen.returncode == 1 and keygen.stderr.decode().count("\n") == 1, keygen.stderr
    assert b"cannot write to stdout: No space left on device" in keygen.stderr
    assert (tmp_path / "keys" / "k.key").exists() and (tmp_path / "keys" / "k.key_secret").exists()
    assert status.returncode == 1 and status.stderr == b"rake-status: cannot write to stdout: No space left on device\n"


@pytest.mark.timeout(60)
def test_a_stdout_left_non_blocking_by_the_caller_gets_all_of_the_output(tmp_path):
    (tmp_path / "Rakefile").write_text("actionset1:\n\thead -c 300000 /dev/zero | tr '\\0' a\n")
    r, w = os.pipe()
    os.set_blocking(w, False)   # as some CI runners leave their children's output
    proc = subprocess.Popen(command("rake-submit") + ["-q"], cwd=tmp_path, env=rake_env(), stdout=w,
                            stderr=subprocess.PIPE)
    os.close(w)
    time.sleep(0.5)   # the pipe fills up before we read
    got = b""
    with os.fdopen(r, "rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            got += chunk
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert got == b"a" * 300000
