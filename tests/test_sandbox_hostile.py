"""Actions that remove, replace or close up their own sandbox: the worker follows no link,
empties nothing outside its work directory, and takes back what the action made."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from worker.execute import JobDirs
from worker.jobs import GONE
from worker.runjob import run_job

from tests.procs import as_nobody


def job(dirs, command, files=()):
    return run_job(("sub", 1), command, list(files), dirs, "w1", 30)


def target_with_a_file(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    (target / "keep.txt").write_text("precious")
    return target


@pytest.mark.timeout(30)
@pytest.mark.parametrize("which", ["$PWD", "$TMPDIR"])
def test_a_sandbox_or_tmp_replaced_by_a_link_empties_nothing_outside_and_the_next_job_runs_clean(tmp_path, which):
    target = target_with_a_file(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    dirs = JobDirs(str(root))
    first = job(dirs, f'd="{which}"; cd /; rm -rf "$d"; ln -s {target} "$d"')
    assert (first.status, first.code) == ("exited", 0)
    assert (target / "keep.txt").read_text() == "precious"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert dirs.free == [] and os.listdir(root) == []   # that job directory is gone, not reused
    second = job(dirs, 'pwd -P; echo "$TMPDIR"; cat in.txt > out.txt', [("in.txt", 0o644, b"data")])
    assert second.status == "exited" and second.code == 0
    for line in second.stdout.decode().split():
        assert line.startswith(str(root))
    assert [(o.path, o.data) for o in second.outputs] == [("out.txt", b"data")]


@pytest.mark.timeout(30)
def test_an_action_that_removes_its_sandbox_and_exits_0_succeeds_with_its_output_once(tmp_path):
    counter = tmp_path / "runs"
    root = tmp_path / "root"
    root.mkdir()
    out = job(JobDirs(str(root)), f'echo ran >> {counter}; echo x > made.txt; rm -rf "$PWD"; echo removed')
    assert (out.status, out.code, out.stdout) == ("exited", 0, b"removed\n")
    assert out.outputs == [] and out.error == GONE
    assert counter.read_text() == "ran\n"


@pytest.mark.timeout(30)
def test_an_action_that_removes_its_sandbox_and_fails_keeps_its_exit_code(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    out = job(JobDirs(str(root)), 'rm -rf "$PWD"; exit 3')
    assert (out.status, out.code, out.error) == ("exited", 3, GONE)


def outputs_as_nobody(command):
    """(status, code, [(path, mode, data)]) of a job run by a worker that is uid 65534."""
    root = tempfile.mkdtemp(prefix="rake-test-")
    os.chmod(root, 0o777)
    try:
        def step():
            out = run_job(("sub", 1), command, [], root, "w1", 30)
            got = [(o.path, o.mode, o.data.decode()) for o in out.outputs]
            return [out.status, out.code, out.error, got, out.skipped]
        answer = as_nobody(step)
        left = os.listdir(root)
    finally:
        shutil.rmtree(root)
    status, code, error, got, skipped = answer
    assert left == [] and skipped == [] and error == ""
    return status, code, sorted(map(tuple, got))


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_as_a_plain_user_outputs_the_action_made_unreadable_come_back_with_their_modes():
    command = ("echo w > wo.txt && chmod 200 wo.txt && mkdir d && echo x > d/f && chmod 000 d "
               "&& echo n > none.txt && chmod 000 none.txt && echo y > top.txt")
    assert outputs_as_nobody(command) == ("exited", 0, [
        ("d/f", 0o644, "x\n"), ("none.txt", 0o000, "n\n"), ("top.txt", 0o644, "y\n"), ("wo.txt", 0o200, "w\n")])


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_as_a_plain_user_a_sandbox_the_action_closed_up_still_gives_its_outputs():
    assert outputs_as_nobody("echo y > top.txt; chmod 000 .") == ("exited", 0, [("top.txt", 0o644, "y\n")])
