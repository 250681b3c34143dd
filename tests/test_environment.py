"""rake on a machine set up differently from the developer's: locale, temp directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.procs import as_nobody, command, rake_env, unprivileged_python


def run(work, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("rake-submit"), cwd=work, env=rake_env(**env), capture_output=True, timeout=60)


@pytest.fixture
def latin1_locale(tmp_path) -> dict[str, str]:
    if shutil.which("localedef") is None:
        pytest.skip("no localedef to make an ISO-8859-1 locale")
    where = tmp_path / "locales"
    where.mkdir()
    made = subprocess.run(["localedef", "-f", "ISO-8859-1", "-i", "en_US", str(where / "en_US.ISO-8859-1")],
                          capture_output=True)
    if not (where / "en_US.ISO-8859-1").exists():
        pytest.skip(f"localedef could not make an ISO-8859-1 locale: {made.stderr[-200:]!r}")
    return {"LOCPATH": str(where), "LC_ALL": "en_US.ISO-8859-1"}


@pytest.mark.timeout(60)
def test_under_a_latin1_locale_commands_and_names_reach_the_system_as_the_rakefile_spells_them(
        tmp_path, latin1_locale):
    work = tmp_path / "w"
    work.mkdir()
    (work / "café.txt").write_text("hi\n")
    (work / "Rakefile").write_text("actionset1:\n\techo local-é\n\techo arrow-→\n"
                                   "\tremote-cat café.txt; echo remote-→ > out-é.txt\n\t\trequires café.txt\n",
                                   encoding="utf-8")
    res = run(work, **latin1_locale)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == sorted(["local-é".encode(), "arrow-→".encode(), b"hi"])
    assert (work / "out-é.txt").read_bytes() == "remote-→\n".encode()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [b"tmp\xffx", b"."])
def test_remote_actions_run_with_a_temp_dir_named_in_bytes_or_relative(tmp_path, name):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-echo a\n\tremote-echo b\n")
    temp = os.path.join(bytes(work), name)
    os.makedirs(temp, exist_ok=True)
    res = run(work, TMPDIR=os.fsdecode(name if name == b"." else temp))   # "." itself: relative
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == [b"a", b"b"]
    assert sorted(os.listdir(work)) == sorted(["Rakefile"] + ([] if name == b"." else [os.fsdecode(name)]))


def as_uid(uid: int, home: str | None, program: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    """A rake program run as `uid` (no passwd entry needed) with HOME as given, by a Python
    that user may run; skips the test where there is none."""
    found = unprivileged_python()
    if found is None:
        pytest.skip("no Python with rake's dependencies that an unprivileged user can run")
    python, extra = found
    env = rake_env(**extra)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "HOME"):
        env.pop(name, None)
    if home is not None:
        env["HOME"] = home
    module = {"rake-submit": "submitter.main", "rake-worker": "worker.main"}[program]
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *python, "-m", module,
                           *args], cwd=cwd, env=env, capture_output=True, timeout=60)


needs_setpriv = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                   reason="needs root and setpriv to run as another user")


@pytest.fixture
def shared_dir():
    """A directory every user may enter (pytest's own are root's alone)."""
    path = tempfile.mkdtemp(prefix="rake-test-")
    os.chmod(path, 0o777)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(60)
@needs_setpriv
def test_a_home_the_user_may_not_look_into_is_no_config_file_not_an_error(shared_dir):
    home = shared_dir / "home"
    home.mkdir(mode=0o700)   # root's, as with `su -m` or `sudo -E -u nobody`
    (shared_dir / "Rakefile").write_text("actionset1:\n\techo hi\n")
    res = as_uid(65534, str(home), "rake-submit", ["-q"], shared_dir)
    assert (res.returncode, res.stdout) == (0, b"hi\n"), res.stderr


@pytest.mark.timeout(60)
@needs_setpriv
def test_a_worker_without_any_home_makes_no_tilde_directory_and_says_what_to_give(shared_dir):
    res = as_uid(12345, None, "rake-worker", ["--broker", "tcp://127.0.0.1:1", "--name", "w"], shared_dir)
    assert res.returncode == 2, res.stderr
    assert b"no home directory" in res.stderr and b"--cache-dir or --workdir" in res.stderr
    assert not (shared_dir / "~").exists()


@pytest.mark.timeout(60)
def test_a_worker_name_that_is_not_utf8_is_a_usage_error(tmp_path):
    res = subprocess.run(command("rake-worker") + ["--broker", "tcp://127.0.0.1:1", "--name", os.fsdecode(b"w\xff"),
                                                    "--workdir", str(tmp_path / "wd")],
                         env=rake_env(), capture_output=True, timeout=30)
    assert res.returncode == 2 and res.stderr.count(b"\n") == 1, res.stderr
    assert b"--name must be UTF-8 text" in res.stderr


@pytest.mark.timeout(60)
def test_rake_submit_in_a_removed_directory_says_so_in_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    rakefile = tmp_path / "Rakefile"
    rakefile.write_text("actionset1:\n\techo hi\n")
    res = subprocess.run(["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "$@"', "sh",
                          *command("rake-submit"), "-f", str(rakefile)], env=rake_env(), capture_output=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(b"rake: error: cannot use the current directory") and res.stderr.count(b"\n") == 1


@pytest.mark.timeout(60)
def test_several_dash_c_are_each_relative_to_the_one_before_as_in_make(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "Rakefile").write_text("actionset1:\n\tpwd\n")
    res = subprocess.run(command("rake-submit") + ["-q", "-C", str(tmp_path / "a"), "-C", "b"], env=rake_env(),
                         capture_output=True, timeout=30)
    assert (res.returncode, res.stdout) == (0, f"{tmp_path / 'a' / 'b'}\n".encode()), res.stderr


@pytest.mark.timeout(60)
def test_the_default_slots_are_the_cpus_this_process_may_use(tmp_path):
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and two CPUs")
    res = subprocess.run(["taskset", "-c", "0", *command("rake-worker"), "--show-config"], env=rake_env(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert b"\nslots = 1 (default)\n" in res.stdout, res.stdout


@pytest.mark.timeout(60)
def test_temp_dirs_of_a_killed_rake_submit_are_removed_by_the_next_run_and_no_others(tmp_path):
    import fcntl
    temp = tmp_path / "tmp"
    dead, alive, users = temp / "rake-submit-dead", temp / "rake-submit-alive", temp / "rake-submit-mine"
    for d in (dead, alive, users):
        d.mkdir(parents=True)
    (dead / ".lock").touch()
    (dead / "leftover").write_bytes(b"x" * 1000)
    (users / "notes.txt").write_text("not rake's: no lock file")
    with open(alive / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        work = tmp_path / "w"
        work.mkdir()
        (work / "Rakefile").write_text("actionset1:\n\techo hi\n")
        res = run(work, TMPDIR=str(temp))
        assert res.returncode == 0, res.stderr
        assert sorted(p.name for p in temp.iterdir()) == ["rake-submit-alive", "rake-submit-mine"]


@contextlib.contextmanager
def tmpfs(where, options: str):
    """A tmpfs mounted at `where` for the block (the test is skipped where it cannot be)."""
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("filled, output", [(240 << 10, 50000), (0, 3000000)])   # by another file, by itself
def test_a_local_action_cut_short_by_a_full_tmpdir_says_so(tmp_path, filled, output):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text(f"actionset1:\n\thead -c {output} /dev/zero | tr '\\0' a\n")
    with tmpfs(tmp_path / "small", "size=256k" if filled else "size=2m") as small:
        if filled:
            (small / "fill").write_bytes(b"\0" * filled)
        res = run(work, TMPDIR=str(small))
    assert res.returncode == 1, res.stderr
    assert b"temporary directory" in res.stderr and b"is full (TMPDIR)" in res.stderr, res.stderr


@pytest.mark.timeout(60)
def test_a_temp_dir_mounted_noexec_is_named_in_a_warning(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    with tmpfs(tmp_path / "noexec", "noexec") as mnt:
        res = run(work, TMPDIR=str(mnt))
    assert res.returncode == 0, res.stderr
    assert b"is on a filesystem mounted noexec" in res.stderr and b"TMPDIR" in res.stderr


@pytest.mark.timeout(60)
def test_a_temp_dir_too_long_for_the_embedded_cluster_is_one_line_and_leaves_nothing(tmp_path):
    temp = str(tmp_path / "t")
    while len(temp) < 4060:
        temp += "/" + "d" * min(200, 4060 - len(temp) - 1)
    os.makedirs(temp)
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    res = run(work, TMPDIR=temp)
    assert res.returncode == 1 and res.stderr.count(b"\n") == 1, res.stderr[-300:]
    assert res.stderr.startswith(b"rake: error: cannot start the embedded local cluster: File name too long")
    assert os.listdir(temp) == []


@pytest.mark.timeout(60)
def test_big_outputs_into_a_directory_on_another_filesystem_are_copied_there(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-mkdir -p out && head -c 3000000 /dev/zero > out/big.bin "
                                   "&& chmod 750 out/big.bin && echo s > out/small.txt\n")
    with tmpfs(work / "out", "size=20m") as out:
        res = run(work)
        assert res.returncode == 0, res.stderr
        assert (out / "big.bin").stat().st_size == 3000000 and (out / "small.txt").read_text() == "s\n"
        assert stat.S_IMODE((out / "big.bin").stat().st_mode) == 0o750
        assert sorted(p.name for p in out.iterdir()) == ["big.bin", "small.txt"]


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_an_ipc_endpoint_the_user_may_not_open_is_named_as_such(shared_dir):
    import zmq
    from submitter.link import _why
    sock = shared_dir / "broker.sock"
    sock.touch(mode=0o600)   # a root broker's socket under umask 077
    seen = as_nobody(lambda: [_why(zmq.EVENT_CONNECT_RETRIED, False, f"ipc://{sock}"),
                              _why(zmq.EVENT_CONNECT_RETRIED, False, f"ipc://{shared_dir}/none")])
    assert seen == [f"cannot connect: permission denied on {sock}", "cannot connect (no broker listens there)"]


@pytest.mark.timeout(30)
def test_a_broker_started_with_a_low_soft_open_files_limit_takes_its_hard_one():
    import resource
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 4096))  # noqa: E731 (a shell's ulimit -Sn 64)
    proc = subprocess.Popen(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=low)
    try:
        assert proc.stdout.readline().startswith(b"tcp://127.0.0.1:")
        with open(f"/proc/{proc.pid}/limits") as fh:
            line = next(line for line in fh if line.startswith("Max open files"))
        assert line.split()[3:5] == ["4096", "4096"], line
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(60)
def test_remote_actions_get_the_open_files_limit_the_worker_was_given_not_the_one_it_took(procs, tmp_path):
    import resource
    from tests.procs import submit
    _, endpoint = procs.broker()
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (200, 4096))  # noqa: E731 (a shell's ulimit -Sn 200)
    worker = procs.start(command("rake-worker") + ["--broker", endpoint, "--workdir", str(tmp_path / "wd")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=low)
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-ulimit -Sn\n")
    res = submit(["--broker", endpoint, "--worker-wait", "20"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"200\n"
    with open(f"/proc/{worker.pid}/limits") as fh:   # while the worker itself took more
        assert next(line for line in fh if line.startswith("Max open files")).split()[3] == "4096"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_small_rakefile_is_read_under_a_small_address_space_limit(tmp_path, how):
    """`ulimit -v 200000` (make runs fine under it): reading a three-line Rakefile must not
    ask for a 256 MiB buffer (read(MAX_RAKEFILE + 1) did: a MemoryError traceback)."""
    import resource
    small = lambda: resource.setrlimit(resource.RLIMIT_AS, (200 << 20, resource.RLIM_INFINITY))  # noqa: E731
    (tmp_path / "Rakefile").write_text("actionset1:\n\techo hi\n")
    args = ["-f", "-"] if how == "stdin" else []
    with open(tmp_path / "Rakefile", "rb") as stdin:
        res = subprocess.run(command("rake-submit") + args, cwd=tmp_path, env=rake_env(), stdin=stdin,
                             capture_output=True, timeout=40, preexec_fn=small)
    assert b"MemoryError" not in res.stderr and b"Traceback" not in res.stderr, res.stderr
    assert (res.returncode, res.stdout) == (0, b"hi\n"), res.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("nofile", [10, 20])
def test_too_few_open_files_for_the_embedded_cluster_is_one_line_not_an_abort_or_a_traceback(tmp_path, nofile):
    """`ulimit -n 10`: libzmq aborted the process (SIGABRT, exit 134); `ulimit -n 20`: an
    OSError traceback out of LocalActions; now one line that says what to raise, exit 1."""
    import resource
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))  # noqa: E731
    (tmp_path / "Rakefile").write_text("actionset1:\n\techo l\n\tremote-echo r\n")
    res = subprocess.run(command("rake-submit"), cwd=tmp_path, env=rake_env(), capture_output=True, timeout=40,
                         preexec_fn=low)
    assert b"Traceback" not in res.stderr, res.stderr
    assert res.returncode == 1, res.stderr
    assert f"rake: error: out of open files (Too many open files; ulimit -n is {nofile})".encode() in res.stderr
