"""The programs' own output and start-up under hostile conditions (a closed or full stdout, a
full disk, a stop signal while starting): one line and a documented status, no traceback,
nothing half-written or left behind."""

from __future__ import annotations

import resource
import shlex
import subprocess
import sys
import textwrap

import pytest

from tests.procs import command, rake_env, wait_until

PROGRAMS = ("rake-submit", "rake-worker", "rake-broker")


def shell(args: list[str], redirect: str) -> list[str]:
    return ["sh", "-c", f"exec {shlex.join(args)} {redirect}"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("redirect, why", [(">&-", "stdout is closed"), (">/dev/full", "No space left on device")])
def test_show_config_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, program, redirect, why):
    res = subprocess.run(shell(command(program) + ["--show-config"], redirect), cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=30)
    assert (res.returncode, res.stderr.decode()) == (1, f"{program}: cannot write to stdout: {why}\n")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_into_a_full_disk_say_so_and_exit_1(tmp_path, flag):
    res = subprocess.run(shell(command("rake-worker") + [flag], ">/dev/full"), cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=30)
    assert (res.returncode, res.stderr) == (1, b"rake-worker: cannot write to stdout: No space left on device\n")


@pytest.mark.timeout(60)
def test_help_into_a_pipe_closed_early_is_quiet_and_exit_0(tmp_path):
    res = subprocess.run(["sh", "-c", f"{shlex.join(command('rake-submit'))} --help | head -c 1 >/dev/null"],
                         cwd=tmp_path, env=rake_env(), capture_output=True, timeout=30)
    assert res.returncode == 0 and b"Traceback" not in res.stderr and b"Exception" not in res.stderr, res.stderr


@pytest.mark.timeout(60)
def test_rake_status_watch_with_stdout_closed_says_so_in_one_line(procs, tmp_path):
    _, endpoint = procs.broker()
    res = subprocess.run(shell(command("rake-status") + ["--broker", endpoint, "--watch", "0.1", "--count", "2"],
                               ">&-"), env=rake_env(), capture_output=True, timeout=30)
    assert (res.returncode, res.stderr) == (1, b"rake-status: cannot write to stdout: stdout is closed\n")


@pytest.mark.timeout(60)
def test_rake_keygen_on_a_full_disk_leaves_no_empty_key_to_refuse_the_next_try(tmp_path):
    keys = tmp_path / "keys"
    full = subprocess.run(command("rake-keygen") + [str(keys), "k"], env=rake_env(), capture_output=True,
                          timeout=30, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)))
    assert full.returncode == 2 and b"File too large" in full.stderr, full.stderr
    assert list(keys.iterdir()) == []
    again = subprocess.run(command("rake-keygen") + [str(keys), "k"], env=rake_env(), capture_output=True, timeout=30)
    assert again.returncode == 0, again.stderr


# The worker's main(), with a SIGTERM sent to itself right after it made its working directory
# (where a stop during start-up lands): it must drain at once and remove that directory.
STOPPED_WHILE_STARTING = textwrap.dedent("""
    import os, signal, sys, tempfile
    import worker.main as m
    real = m.take_workdir
    made = []
    def take(args, log):
        workdir, status = real(args, log)
        made.append(workdir)
        os.kill(os.getpid(), signal.SIGTERM)
        return workdir, status
    m.take_workdir = take
    status = m.main(["--broker", "tcp://127.0.0.1:1", "--cache-dir", sys.argv[1], "--isolate", "none", "-q"])
    print(status, os.path.exists(made[0]))
""")


@pytest.mark.timeout(60)
def test_a_worker_stopped_while_starting_up_removes_its_working_directory(tmp_path):
    res = subprocess.run([sys.executable, "-c", STOPPED_WHILE_STARTING, str(tmp_path / "cache")],
                         env=rake_env(TMPDIR=str(tmp_path)), capture_output=True, timeout=40)
    assert (res.returncode, res.stdout) == (0, b"0 False\n"), res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


@pytest.mark.timeout(60)
def test_a_worker_ignores_a_given_open_files_limit_it_inherited_from_its_environment(procs, tmp_path):
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        worker = procs.start(command("rake-worker") + ["--broker", "tcp://127.0.0.1:1", "--workdir", str(tmp_path / "wd"),
                                                       "--isolate", "none"],
                             env=rake_env(RAKE_GIVEN_NOFILE="99999999999"), stderr=err)
    assert wait_until(lambda: " slots, broker " in log.read_text(), 30), log.read_text()
    worker.terminate()
    worker.wait(30)
    assert "without a spawner" not in log.read_text() and "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flags", [["-j", ""], ["-kj", ""], ["-j", "", "-f", "Rakefile"]])
def test_an_empty_jobs_value_is_refused_as_the_jobs_value(tmp_path, flags):
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttrue\n")
    res = subprocess.run(command("rake-submit") + flags, cwd=tmp_path, env=rake_env(), capture_output=True, timeout=30)
    assert res.returncode == 2 and b"argument -j/--jobs: invalid int value: ''" in res.stderr, res.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("directory, name, message", [
    ("keys", "a\n", b"key name 'a\\n' must be 1-64 letters"),   # "$" of a regex let a final newline in
    ("", "a", b"DIR must not be empty"),
])
def test_rake_keygen_refuses_a_name_ending_in_a_newline_and_an_empty_directory(tmp_path, directory, name, message):
    res = subprocess.run(command("rake-keygen") + [directory, name], cwd=tmp_path, env=rake_env(),
                         capture_output=True, timeout=30)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program, text, message", [
    # A NUL, which TOML writes "\u0000": a worker so named joined and failed every job it was sent
    # ("embedded null byte" in RAKE_WORKER); as a path or an address it was a traceback.
    ("rake-worker", '[rake-worker]\nname = "w\\u0000"\n', "'rake-worker.name' must not hold a NUL character"),
    ("rake-worker", '[rake-worker]\nworkdir = "w\\u0000"\n', "'rake-worker.workdir' must not hold a NUL character"),
    ("rake-submit", 'curve_key = "k\\u0000"\nserver_key = "s"\n', "'curve_key' must not hold a NUL character"),
    ("rake-broker", '[rake-broker]\nhttp = "a\\u0000:80"\n', "a host name cannot hold a NUL character"),
    ("rake-broker", '[rake-broker]\nbind = "ipc://a\\u0000"\n', "'rake-broker.bind' must not hold a NUL character"),
    # rake-worker takes names of up to 256 characters: the file's line, not "--name", is named.
    ("rake-worker", f'[rake-worker]\nname = "{"n" * 257}"\n', "'rake-worker.name' must be a non-empty string of at most 256"),
])
def test_a_config_value_no_program_could_use_is_named_with_its_file_and_line(tmp_path, program, text, message):
    user = tmp_path / "xdg" / "rake" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(text)
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    res = subprocess.run(command(program) + ["--insecure"] * (program == "rake-broker"), cwd=tmp_path,
                         env=rake_env(XDG_CONFIG_HOME=str(tmp_path / "xdg")), capture_output=True, timeout=30)
    line = 1 if text.startswith("curve_key") else 2
    assert res.returncode == 2 and res.stderr.decode().startswith(f"{program}: {user}:{line}: "), res.stderr
    assert message in res.stderr.decode() and res.stderr.count(b"\n") == 1, res.stderr


@pytest.mark.timeout(60)
def test_a_worker_with_more_slots_than_its_open_files_allow_warns_at_start(procs, tmp_path):
    log = tmp_path / "worker.log"
    with log.open("wb") as err:   # the hard limit too: the worker may not raise it
        worker = procs.start(command("rake-worker") + ["--broker", "tcp://127.0.0.1:1", "-j", "200",
                                                       "--workdir", str(tmp_path / "wd"), "--isolate", "none"],
                             stderr=err, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    assert wait_until(lambda: " slots, broker " in log.read_text(), 30), log.read_text()
    worker.terminate()
    worker.wait(30)
    assert "warning: 200 slots may need 864 open files, and ulimit -n is 256" in log.read_text(), log.read_text()
