"""A worker disk that was full for a while, during an action, and had room again by its end."""

from __future__ import annotations

import select
import subprocess
import time

import pytest

from worker.execute import JobDirs
from worker.jobs import Jobs
from worker.limits import NONE


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only: skipped otherwise), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(path) -> None:
    with open(path, "wb") as fh:
        try:
            for _ in range(64):   # 8 MiB at most, on a 4 MiB disk
                fh.write(bytes(128 << 10))
                fh.flush()
        except OSError:
            pass


def finish(jobs: Jobs) -> list:
    done = []
    while not done:   # the test's timeout bounds it
        ready, _, _ = select.select(jobs.fds(), [], [], max(0.0, min(1.0, jobs.next_deadline() - time.monotonic())))
        jobs.on_tick(time.monotonic())
        for fd in ready:
            for exit in jobs.on_readable(fd):
                done += jobs.finish(exit)
    return done


@pytest.mark.timeout(30)
def test_an_action_whose_writes_failed_while_another_jobs_inputs_filled_the_disk_is_an_error(small_disk, tmp_path):
    """A worker on a small disk staged a big input for one job while another
    wrote 1500 small files; they came back empty, with exit 0 (the shell's last command) and no
    message (stderr is captured on that disk), because the failed staging had freed the disk
    again before the action ended, when the worker looks."""
    go, wrote = tmp_path / "go", tmp_path / "wrote"
    jobs = Jobs(JobDirs(str(small_disk), reuse=False), "w1", limits=NONE)
    command = (f"while [ ! -e {go} ]; do sleep 0.05; done; echo data > out; touch {wrote}; "
               f"while [ -e {go} ]; do sleep 0.05; done; echo done")
    assert jobs.start(("sub", 1), command, [], None, time.monotonic()) == []
    fill(small_disk / "filler")
    [(_, staged)] = jobs.start(("sub", 2), "true", [("big.bin", 0o644, bytes(1 << 20))], None, time.monotonic())
    assert staged.status == "error" and "No space left" in staged.error
    go.touch()
    for _ in range(600):   # at most 30 s, the test's timeout
        if wrote.exists():
            break
        time.sleep(0.05)
    (small_disk / "filler").unlink()   # room again before the action ends
    go.unlink()
    [(_, outcome)] = finish(jobs)
    jobs.close()
    assert outcome.status == "error" and "full while the action ran" in outcome.error, outcome
    assert outcome.outputs == []   # its empty `out` is not returned over the user's
