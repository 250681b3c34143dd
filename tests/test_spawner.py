"""The spawner, in a PID namespace and as a plain child (where namespaces are not allowed):
leftovers, what happens when the worker goes, and falling back when a namespace is refused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from worker.execute import JobDirs
from worker.isolation import Spawner, open_spawner
from worker.jobs import Jobs
from worker.runjob import run_job

from tests.procs import NOBODY, rake_env, submit, unprivileged_python


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["pidns", "none"])
def test_a_left_process_fails_its_action_and_the_next_one_runs_clean(tmp_path, mode):
    """The spawner looks for left processes only when something besides running shells is
    there: a job alone that left nothing is not searched for, one that did is. Without a
    namespace the spawner adopts what is left (a subreaper), so it finds the same."""
    if mode == "pidns" and (os.geteuid() != 0 or shutil.which("unshare") is None):
        pytest.skip("a PID namespace needs root")
    ns = open_spawner(mode, lambda s: None)
    try:
        got = [run_job(("sub", n), command, [], str(tmp_path), "w1", 10, spawner=ns)
               for n, command in enumerate(["true", "sleep 30 & exit 0", "exit 3", "sleep 0.2 & wait"])]
    finally:
        ns.close()
    assert (got[0].status, got[0].code, got[0].error) == ("exited", 0, "")
    assert (got[1].status, got[1].code) == ("exited", 0)
    assert got[1].error.startswith("killed: it left processes running")
    assert (got[2].status, got[2].code, got[2].error) == ("exited", 3, "")
    assert (got[3].status, got[3].code, got[3].error) == ("exited", 0, "")


@pytest.mark.timeout(30)
def test_without_a_namespace_the_spawner_kills_every_action_and_its_daemons_when_the_worker_goes(tmp_path):
    spawner = open_spawner("none", lambda s: None)
    jobs = Jobs(JobDirs(str(tmp_path)), "w1", spawner)
    pids = tmp_path / "pids"
    # A daemon in a session of its own, which a process-group kill would miss.
    assert jobs.start(("sub", 1), f"setsid sleep 60 & echo $! > {pids}.new; echo $$ >> {pids}.new; "
                           f"mv {pids}.new {pids}; sleep 60", [], None, time.monotonic()) == []
    deadline = time.monotonic() + 10
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = [int(p) for p in pids.read_text().split()]
    try:
        assert len(started) == 2 and all(alive(p) for p in started)
        spawner.close()   # as when the worker dies: its end of the socket closes
        deadline = time.monotonic() + 10
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.02)
        jobs.close()
        assert not any(alive(p) for p in started)
    finally:
        for pid in filter(alive, started):   # only if the test failed
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["pidns", "none"])
def test_an_action_gets_only_its_stdin_stdout_and_stderr_never_the_spawners_socket(tmp_path, mode):
    """With the spawner's socket an action could forge reports of other actions."""
    if mode == "pidns" and (os.geteuid() != 0 or shutil.which("unshare") is None):
        pytest.skip("a PID namespace needs root")
    spawner = open_spawner(mode, lambda s: None)
    try:
        out = run_job(("sub", 1), "ls /proc/$$/fd", [], str(tmp_path), "w1", 10, spawner=spawner)
    finally:
        spawner.close()
    assert out.stdout.split() == [b"0", b"1", b"2"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["pidns", "none"])
def test_an_action_gets_every_signal_at_its_default_whatever_its_worker_ignored_or_blocked(tmp_path, mode):
    """A worker started in the background by a script ignores SIGINT and SIGQUIT."""
    if mode == "pidns" and (os.geteuid() != 0 or shutil.which("unshare") is None):
        pytest.skip("a PID namespace needs root")
    before = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    try:
        spawner = open_spawner(mode, lambda s: None)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
        signal.signal(signal.SIGQUIT, before)
    try:
        # Read by the action's own process (exec keeps the mask and what is ignored): the shell
        # blocks every signal while it waits for a child, so its /proc entry is no witness.
        out = run_job(("sub", 1), "exec grep -E '^Sig(Ign|Blk)' /proc/self/status", [], str(tmp_path), "w1", 10,
                      spawner=spawner)
    finally:
        spawner.close()
    blocked, ignored = (int(v, 16) for v in out.stdout.split()[1::2])
    ours = sum(1 << (n - 1) for n in signal.valid_signals())   # not glibc's own (32, 33)
    assert (blocked & ours, ignored & ours) == (0, 0)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["pidns", "none"])
def test_what_escaped_its_jobs_name_is_killed_once_nothing_runs(tmp_path, mode):
    """A leftover that cleared its environment cannot be told apart by RAKE_JOB; once no
    action runs, nothing below the spawner may run either."""
    if mode == "pidns" and (os.geteuid() != 0 or shutil.which("unshare") is None):
        pytest.skip("a PID namespace needs root")
    spawner = open_spawner(mode, lambda s: None)
    try:
        # Its shell ends once the daemon is sleep, with no environment left (no RAKE_JOB).
        first = run_job(("sub", 1), "setsid env -i /bin/sleep 60 </dev/null >/dev/null 2>&1 & "
                        "until [ \"$(tr '\\0' ' ' </proc/$!/cmdline)\" = '/bin/sleep 60 ' ]; do sleep 0.01; done",
                        [], str(tmp_path), "w1", 10, spawner=spawner)
        second = run_job(("sub", 2), "ps -eo args | grep -c '^/bin/sleep 60' || true",
                         [], str(tmp_path), "w1", 10, spawner=spawner)
    finally:
        spawner.close()
    assert first.status == "exited"
    assert second.stdout == b"0\n"


def alive(pid: int) -> bool:
    """Running (a zombie has ended; its parent has yet to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(30)
def test_without_a_namespace_a_process_outside_the_spawner_is_never_killed_for_its_label(tmp_path):
    """Only what descends from the spawner can be an action's leftover, whatever it is called."""
    stranger = subprocess.Popen(["sleep", "30"], env={**os.environ, "RAKE_JOB": "sub-1"})
    try:
        spawner = open_spawner("none", lambda s: None)
        try:
            out = run_job(("sub", 1), "sleep 30 & exit 0", [], str(tmp_path), "w1", 10, spawner=spawner)
        finally:
            spawner.close()
        assert out.error.startswith("killed: it left processes running")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.fixture
def refused_namespaces(tmp_path, monkeypatch):
    """An `unshare` that fails as it does for a user who may not create namespaces."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")


@pytest.mark.timeout(30)
def test_where_namespaces_are_refused_auto_falls_back_to_a_plain_spawner_and_says_why(tmp_path, refused_namespaces):
    said = []
    spawner = open_spawner("auto", said.append)
    try:
        assert isinstance(spawner, Spawner) and not spawner.namespace
        out = run_job(("sub", 1), "echo ran", [], str(tmp_path), "w1", 10, spawner=spawner)
    finally:
        spawner.close()
    assert (out.status, out.stdout) == ("exited", b"ran\n")
    assert len(said) == 1 and "Operation not permitted" in said[0]


@pytest.mark.timeout(30)
def test_where_namespaces_are_refused_pidns_is_an_error_naming_the_reason(refused_namespaces):
    with pytest.raises(OSError, match="could not create a PID namespace: unshare: unshare failed: Operation not permitted"):
        open_spawner("pidns", lambda s: None)


@pytest.mark.timeout(60)
def test_rake_submit_runs_remote_actions_where_namespaces_are_refused(tmp_path, refused_namespaces):
    """As for any user who is not root: the embedded worker falls back to a plain spawner."""
    work = tmp_path / "work"
    work.mkdir()
    # Its parent must be the spawner: starting actions directly (the last resort) would pass too.
    (work / "Rakefile").write_text("actionset1:\n\tremote-echo ran under $(tr '\\0' ' ' </proc/$PPID/cmdline)\n")
    done = submit([], work)
    assert done.returncode == 0, done.stderr.decode()
    assert b"ran under" in done.stdout and b"spawner.py" in done.stdout, done.stdout


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="becoming another user needs root")
def test_rake_submit_as_an_unprivileged_user_runs_remote_actions():
    found = unprivileged_python()
    if found is None:
        pytest.skip("no Python with rake's dependencies that an unprivileged user can run")
    python, env = found
    work = tempfile.mkdtemp(prefix="rake-nobody-")
    try:
        os.chmod(work, 0o777)
        with open(os.path.join(work, "Rakefile"), "w") as fh:
            fh.write("actionset1:\n\tremote-id -u; tr '\\0' ' ' </proc/$PPID/cmdline\n")
        done = subprocess.run(NOBODY + python + ["-m", "submitter.main"], cwd=work, capture_output=True,
                              env=rake_env(HOME=work, **env), timeout=50, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.split()[0] == b"65534" and b"spawner.py" in done.stdout, done.stdout


@pytest.mark.timeout(90)
def test_without_a_namespace_an_action_that_kills_its_spawner_fails_and_the_worker_goes_on(
        procs, tmp_path, refused_namespaces):
    """The plain spawner is its actions' parent: SIGTERM it ignores; after SIGKILL the worker
    starts another, the action fails (on every attempt), and the next run is served."""
    _, endpoint = procs.cluster(tmp_path, ("w1",), 1)

    def run(line: str):
        work = tmp_path / f"work{len(list(tmp_path.glob('work*')))}"
        work.mkdir()
        (work / "Rakefile").write_text(f"actionset1:\n\tremote-{line}\n")
        return submit(["--broker", endpoint], work, timeout=60)

    terminated = run("kill $PPID; echo survived")
    assert terminated.returncode == 0 and terminated.stdout == b"survived\n", terminated.stderr
    killed = run("kill -9 $PPID; sleep 5")
    assert killed.returncode != 0 and b"spawner is gone" in killed.stderr, killed.stderr
    after = run("echo still-fine")
    assert after.returncode == 0 and after.stdout == b"still-fine\n", after.stderr
