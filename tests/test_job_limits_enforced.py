"""Limits enforced on jobs without a PID namespace, through the spawner and started directly."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from worker.isolation import open_spawner
from worker.runjob import run_job
from worker.limits import NONE, Limits
from worker.watch import time_limit


SMALL = Limits(max_output=4096, max_time=5.0, max_procs=0, max_memory=128 << 20,
               max_disk=8 << 20, max_files=50, nice=3)


@pytest.fixture(params=["spawner", "direct"])
def via(request):
    return request.param


def run(tmp_path, command, limits=SMALL, timeout=None, via="spawner"):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    spawner = open_spawner("none", lambda s: None, limits) if via == "spawner" else None
    try:
        return run_job(("sub", 1), command, [], str(root), "w1", timeout, spawner=spawner, limits=limits)
    finally:
        if spawner is not None:
            spawner.close()


@pytest.mark.timeout(30)
def test_output_over_the_cap_is_cut_and_marked_and_the_rest_is_whole(tmp_path, via):
    out = run(tmp_path, "head -c 10000 /dev/zero; echo short >&2", via=via)
    assert (out.status, out.code) == ("exited", 0)
    assert out.stdout == bytes(4096) and out.stderr == b"short\n"
    assert out.truncated == ("stdout",)


@pytest.mark.timeout(30)
def test_without_limits_nothing_is_cut(tmp_path, via):
    out = run(tmp_path, "head -c 10000 /dev/zero", limits=NONE, via=via)
    assert len(out.stdout) == 10000 and out.truncated == ()


@pytest.mark.timeout(30)
def test_a_memory_hog_fails_in_a_process_group_too(tmp_path, via):
    out = run(tmp_path, "dd if=/dev/zero of=/dev/null bs=512M count=1", via=via)
    assert (out.status, out.code) == ("exited", 1)
    assert b"memory exhausted" in out.stderr


@pytest.mark.timeout(30)
def test_a_file_over_the_disk_limit_is_stopped_and_explained(tmp_path, via):
    out = run(tmp_path, "exec dd if=/dev/zero of=big bs=1M count=100", via=via)
    assert (out.status, out.code) == ("signalled", signal.SIGXFSZ)
    assert out.error == "killed: file size limit of 8 MiB (worker --max-disk; its stdout and stderr count as files)"


def test_sparse_files_count_their_size_not_their_blocks_against_the_disk_limit(tmp_path, via):
    # Each under the per-file limit and taking no blocks, yet all of their size is stored and sent.
    out = run(tmp_path, "for i in 1 2 3; do truncate -s 7M f$i; done", via=via)
    assert (out.status, out.code, out.outputs) == ("signalled", signal.SIGKILL, [])
    assert out.error == "killed: disk limit: its outputs take 21 MiB, over 8 MiB"

def test_a_sparse_scratch_file_in_tmp_costs_no_disk_and_the_action_succeeds(tmp_path, via):
    out = run(tmp_path, 'truncate -s 7M "$TMPDIR/a" "$TMPDIR/b"; sleep 1; rm "$TMPDIR/a" "$TMPDIR/b"; echo done', via=via)
    assert (out.status, out.code, out.stdout) == ("exited", 0, b"done\n"), out.error


@pytest.mark.timeout(30)
def test_too_many_files_are_stopped_by_the_watch(tmp_path, via):
    out = run(tmp_path, "i=0; while [ $i -lt 1000 ]; do i=$((i+1)); : > f$i; sleep 0.005; done", via=via)
    assert (out.status, out.code) == ("signalled", signal.SIGKILL)
    assert out.error == "killed: file limit: more than 50 files in the sandbox"


@pytest.mark.timeout(30)
def test_the_workers_time_limit_ends_a_job_that_has_none(tmp_path, via):
    out = run(tmp_path, "sleep 30", limits=Limits(max_time=0.5), via=via)
    assert out.status == "timeout" and out.error == "killed: time limit of 0.5 s (worker --max-time)"


@pytest.mark.timeout(30)
def test_actions_get_the_lower_priority(tmp_path, via):
    out = run(tmp_path, "cut -d' ' -f19 /proc/self/stat", via=via)
    # Niceness stops at 19: run under `nice -n 19`, the action can only be as nice as we are.
    assert int(out.stdout) >= min(os.getpriority(os.PRIO_PROCESS, 0) + 3, 19)


@pytest.mark.timeout(30)
def test_a_command_that_leaves_a_process_running_keeps_its_exit_status_and_the_process_is_killed(tmp_path, via):
    # SPEC §3: it fails only by a non-zero exit or a signal; what it left must not outlive it.
    out = run(tmp_path, "sleep 30 & exit 0", via=via)
    assert (out.status, out.code) == ("exited", 0)
    assert out.error == "killed: it left processes running when it ended (1 killed)"


@pytest.mark.timeout(30)
def test_a_background_process_that_was_waited_for_is_fine(tmp_path, via):
    out = run(tmp_path, "sleep 0.1 & wait", via=via)
    assert (out.status, out.code, out.error) == ("exited", 0, "")


def test_the_smaller_time_limit_wins_and_only_ours_is_explained():
    ours = Limits(max_time=10)
    assert time_limit(None, ours) == (10, "killed: time limit of 10 s (worker --max-time)")
    assert time_limit(3, ours) == (3, "")
    assert time_limit(30, ours)[0] == 10
    assert time_limit(30, Limits(max_time=0)) == (30, "")


def test_inputs_bigger_than_the_disk_limit_are_refused_before_anything_is_staged(tmp_path):
    """One 1 MiB blob named 300 times would stage 300 MiB before the watch saw any of it."""
    import dataclasses
    import time
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    (tmp_path / "jobs").mkdir()
    jobs = Jobs(JobDirs(str(tmp_path / "jobs")), "w1", limits=dataclasses.replace(NONE, max_disk=50 << 20))
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * (1 << 20))
    files = [(f"f{i:03d}", 0o644, str(blob)) for i in range(300)]
    try:
        [(key, outcome)] = jobs.start(("sub", 1), "true", files, None, time.monotonic(), size=300 << 20)
        assert outcome.status == "error" and "over the worker's disk limit of 50 MiB (--max-disk)" in outcome.error
        assert not any(name.startswith("job-") and os.listdir(tmp_path / "jobs" / name / "sandbox")
                       for name in os.listdir(tmp_path / "jobs"))
    finally:
        jobs.close()


def test_the_disk_watch_walks_a_running_jobs_tree_on_the_pool_not_on_the_loop(tmp_path):
    """Four jobs of 90,000 directories each: walked on the loop every 0.5 s, they kept the
    heartbeats from going out, and the broker dropped the worker as silent."""
    import dataclasses
    import time
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    offloaded = []
    (tmp_path / "jobs").mkdir()
    jobs = Jobs(JobDirs(str(tmp_path / "jobs")), "w1", offload=lambda fn, then: offloaded.append((fn, then)) or [],
                limits=dataclasses.replace(NONE, max_disk=1 << 20))
    try:
        assert jobs.start(("sub", 1), "head -c 2000000 /dev/zero > big; sleep 30", [], None, time.monotonic()) == []
        time.sleep(1.0)
        jobs.on_tick(time.monotonic() + 1)
        jobs.on_tick(time.monotonic() + 2)   # one check at a time: none again until it answered
        [(fn, then)] = offloaded
        assert jobs.running[("sub", 1)].over == ""   # nothing decided on this thread
        then(fn(), None)                             # the pool's answer: over the limit
        assert "disk limit" in jobs.running[("sub", 1)].over
    finally:
        jobs.kill_all()
        jobs.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only: skipped otherwise), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.timeout(30)
def test_an_action_failing_on_a_full_worker_disk_is_an_error_to_run_elsewhere_not_a_failure(small_disk):
    # The command cannot tell us: its "No space left" message went to a capture on that disk.
    out = run(small_disk, "head -c 8000000 /dev/zero > big; echo computed > result.txt", limits=NONE)
    assert out.status == "error" and "the worker's disk is full" in out.error, out
    assert out.outputs == []   # its half-written files are not returned over the user's


@pytest.mark.timeout(30)
def test_an_action_that_exits_0_on_a_full_worker_disk_is_not_a_success(small_disk):
    # `touch` needs only an inode: the shell's status is 0 although `head` failed midway, and
    # its "No space left" went to a capture on that disk; the cut `big` must not come back.
    out = run(small_disk, "head -c 8000000 /dev/urandom > big; touch done", limits=NONE)
    assert out.status == "error" and "the worker's disk is full" in out.error, out
    assert out.outputs == []


@pytest.mark.timeout(30)
def test_an_action_that_fails_on_a_disk_with_room_is_its_own_failure(small_disk):
    out = run(small_disk, "head -c 1000 /dev/zero > some; exit 3", limits=NONE)
    assert (out.status, out.code) == ("exited", 3)


@pytest.mark.timeout(30)
def test_an_action_that_stops_its_spawner_cannot_outlive_its_timeout(tmp_path):
    # Without a PID namespace the spawner is the shell's parent, and stoppable by it: the
    # worker lets it go on, so the timeout still kills the action and the result comes back.
    out = run(tmp_path, "kill -STOP $PPID; echo went-on; sleep 30", limits=NONE, timeout=2.0)
    assert out.status == "timeout" and out.stdout == b"went-on\n", out
