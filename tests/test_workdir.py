"""Tests of a worker's working directory (worker/workdir.py) and how rake-worker reports a
directory it cannot use."""

import os
import stat
import subprocess

import pytest

from tests.procs import command, rake_env, wait_until
from worker.workdir import LOCK, claim


def test_a_directory_no_worker_used_keeps_its_job_named_files(tmp_path):
    (tmp_path / "job-important" / "sub").mkdir(parents=True)
    (tmp_path / "job-important" / "sub" / "file").write_text("data")
    os.close(claim(str(tmp_path)))
    assert (tmp_path / "job-important" / "sub" / "file").read_text() == "data"


def test_a_dead_workers_sandboxes_are_cleared_from_its_directory(tmp_path):
    (tmp_path / LOCK).write_text("")   # a worker had it: what it left is its sandboxes
    (tmp_path / "job-abc_1234" / "sandbox" / "deep").mkdir(parents=True)
    (tmp_path / "job-abc_1234" / "tmp").mkdir()
    (tmp_path / "mine.txt").write_text("kept")
    os.close(claim(str(tmp_path)))
    assert not (tmp_path / "job-abc_1234").exists() and (tmp_path / "mine.txt").exists()


def test_a_used_directory_keeps_the_users_own_job_named_files(tmp_path):
    (tmp_path / LOCK).write_text("")
    (tmp_path / "job-applications.txt").write_text("notes")
    (tmp_path / "job-2025").mkdir()
    (tmp_path / "job-abcd1234").mkdir()                     # named like ours, but holds more
    (tmp_path / "job-abcd1234" / "sandbox").mkdir()
    (tmp_path / "job-abcd1234" / "cv.txt").write_text("cv")
    os.close(claim(str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "job-2025", "job-abcd1234", "job-applications.txt"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, env, message", [
    (["--workdir", "/etc/hostname"], {}, "cannot use --workdir /etc/hostname: it is not a directory"),
    ([], {"XDG_CACHE_HOME": "/proc/no-such-dir"}, "cannot use the cache directory /proc/no-such-dir/"),
    (["--workdir", ""], {}, "--workdir must not be empty"),
    (["--cache-dir", "/proc/self"], {}, "cannot use the cache directory /proc/self (--cache-dir): Permission denied"),   # not "here": it would clear job-* here
    (["--cache-dir", ""], {}, "--cache-dir must not be empty"),
])
def test_a_directory_the_worker_cannot_use_is_one_line_naming_it_with_exit_2(tmp_path, args, env, message):
    res = subprocess.run(command("rake-worker") + ["--broker", "tcp://127.0.0.1:1", *args],
                         env=rake_env(**env), cwd=tmp_path, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr.strip().splitlines()[-1], res.stderr   # (argparse prints its usage first)
    assert list(tmp_path.iterdir()) == []



@pytest.mark.timeout(60)
def test_two_workers_on_one_cache_directory_the_second_is_refused_naming_it(procs, tmp_path):
    from tests.procs import free_port
    cache = tmp_path / "shared-cache"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    procs.worker(endpoint, "first", tmp_path / "w1", 1, "--cache-dir", str(cache))
    assert wait_until(lambda: (cache / ".lock").exists(), 10)
    res = subprocess.run(command("rake-worker") + ["--broker", endpoint, "--workdir", str(tmp_path / "w2"),
                                                   "--cache-dir", str(cache)],
                         env=rake_env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 1 and f"cache directory {cache} is in use by another rake-worker" in res.stderr


@pytest.mark.timeout(60)
def test_a_worker_that_stops_leaves_no_job_directory_in_its_workdir(procs, tmp_path):
    import signal
    from tests.procs import submit
    _, endpoint = procs.cluster(tmp_path, ("w1",), 2)
    work = tmp_path / "work"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\tremote-echo hi > out{n}\n" for n in range(4)))
    assert submit(["--broker", endpoint], cwd=work).returncode == 0
    scratch = tmp_path / "scratch-w1"
    assert list(scratch.glob("job-*"))   # kept between jobs, for the next one
    worker = procs.procs[-1]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert not list(scratch.glob("job-*")) and (scratch / "cache").is_dir()


def test_a_work_directory_removed_under_the_worker_is_made_again(tmp_path):
    from worker.execute import JobDirs
    root = tmp_path / "wd"
    root.mkdir()
    dirs = JobDirs(str(root))
    dirs.give(dirs.take())
    import shutil
    shutil.rmtree(root)            # a tmp cleaner, say
    dirs.free.clear()
    jobdir = dirs.take()
    assert os.path.isdir(os.path.join(jobdir, "sandbox")) and stat.S_IMODE(os.stat(root).st_mode) == 0o711


@pytest.mark.timeout(30)
def test_a_new_workdir_made_for_user_can_be_entered_by_that_user(procs, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("--user needs root")
    import shutil
    import tempfile
    from pathlib import Path
    top = Path(tempfile.mkdtemp(prefix="rake-test-"))   # pytest's own tmp is 0700
    try:
        top.chmod(0o755)
        log = tmp_path / "worker.log"
        proc = procs.start(command("rake-worker") + ["--broker", "tcp://127.0.0.1:9", "--name", "u",
                                                     "--user", "65534", "--workdir", str(top / "newdir")],
                           stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        assert wait_until(lambda: proc.poll() is not None or "slots" in log.read_text(), 15), log.read_text()
        assert proc.poll() is None, log.read_text()   # it was refused: "user 65534 cannot enter"
        assert stat.S_IMODE(os.stat(top / "newdir").st_mode) == 0o711
    finally:
        procs.stop()
        shutil.rmtree(top, ignore_errors=True)
