"""A worker disk that was full for a while, during an action, and had room again by its end."""

from __future__ import annotations

import select
import subprocess
import time

import pytest

from worker.execute import JobDirs, attempt
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


@pytest.mark.timeout(30)
def test_an_action_started_after_the_disk_had_room_again_is_not_an_error_for_a_full_disk_during_its_staging(tmp_path):
    """Its inputs (many: staged on the pool) were whole; the disk was seen full meanwhile
    (another job's staging failed), then had room before this action started."""
    later = []
    jobs = Jobs(JobDirs(str(tmp_path / "work"), reuse=False), "w1", limits=NONE,
                offload=lambda fn, then: later.append((fn, then)) or [])
    files = [(f"in{i}", 0o644, b"x") for i in range(100)]
    assert jobs.start(("sub", 1), "cat in1 > out", files, None, time.monotonic()) == []
    jobs.note_full(time.monotonic())   # while it was staging
    [(fn, then)] = later
    assert then(*attempt(fn)) == []   # staged whole, and started now
    later.clear()
    done = []
    for _ in range(300):   # at most 30 s, the test's timeout
        ready, _, _ = select.select(jobs.fds(), [], [], 0.1)
        for fd in ready:
            for exit in jobs.on_readable(fd):
                done += jobs.finish(exit)
        for fn, then in later:   # collecting its outputs
            done += then(*attempt(fn))
        later.clear()
        if done:
            break
    jobs.close()
    [(_, outcome)] = done
    assert outcome.status == "exited" and outcome.code == 0 and not outcome.error, outcome


@pytest.mark.timeout(30)
def test_a_job_arriving_just_after_room_came_back_is_not_refused_for_a_stale_full_disk(tmp_path):
    # The loop looks at the disk once a second; a job refused in between for a disk that has
    # room again used an attempt for nothing (three, on a worker alone: the build failed).
    from protocol import Job
    from protocol.timing import Timing
    from worker.effects import Start
    from worker.loop import WorkerLoop
    (tmp_path / "w").mkdir()
    loop = WorkerLoop("tcp://127.0.0.1:1", "w", "h", 1, str(tmp_path / "w"), Timing(), lambda line: None,
                      isolate="none")
    try:
        finished = []
        loop._finished = finished.extend
        loop.core.full = "the worker's disk is full (0 KiB free on /)"
        loop.next_disk_check = time.monotonic() + 3600   # as if it had just looked
        loop._start(Start(("S1", 1), Job(job=1, worker="57", command="true"), []))
        assert not any("disk is full" in (outcome.error or "") for _, outcome in finished), finished
        assert not loop.core.full
    finally:
        loop.end()
