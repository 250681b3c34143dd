"""Job directories and capture files reused by a long-lived Jobs (worker/jobs.py)."""

import os
import time


def run_in(jobs, key, command):
    """One job through a long-lived Jobs (directories and capture files reused), to its end."""
    import select
    done = jobs.start(key, command, [], 10, time.monotonic())
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        ready, _, _ = select.select(jobs.fds(), [], [], 1)
        for fd in ready:
            for exit in jobs.on_readable(fd):
                done += jobs.finish(exit)
    jobs.tidy()
    [(_, outcome)] = done
    return outcome


def test_a_reused_job_directory_gives_each_job_only_its_own_output(tmp_path):
    """Capture files are kept per job directory and emptied, not reopened, between jobs."""
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        got = [run_in(jobs, ("sub", n), command) for n, command in enumerate(
            ["printf 'a long first output'; printf 'err one' >&2", "printf x", "true"])]
        assert [(o.stdout, o.stderr) for o in got] == [
            (b"a long first output", b"err one"), (b"x", b""), (b"", b"")]
        assert len(jobs.captures) == 1   # one job directory served all three
    finally:
        jobs.close()


def test_a_finished_jobs_captured_output_is_freed_at_once_not_when_its_directory_is_reused(tmp_path):
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        got = run_in(jobs, ("sub", 1), "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2")
        assert (len(got.stdout), len(got.stderr)) == (3000000, 2000000)
        [files] = jobs.captures.values()   # kept for the next job, but holding nothing
        assert [os.fstat(f.fileno()).st_size for f in files] == [0, 0]
        assert run_in(jobs, ("sub", 2), "printf x; printf y >&2").stdout == b"x"
    finally:
        jobs.close()


def test_a_job_that_locks_its_directories_does_not_lock_out_the_next_job(tmp_path):
    from worker.execute import JobDirs
    from worker.jobs import Jobs
    jobs = Jobs(JobDirs(str(tmp_path)), "w1")
    try:
        run_in(jobs, ("sub", 1), 'chmod 555 .; chmod 500 "$TMPDIR"')
        after = run_in(jobs, ("sub", 2), 'echo x > f && mktemp >/dev/null && stat -c %a . "$TMPDIR"')
        assert (after.status, after.code, after.stdout.split()) == ("exited", 0, [b"700", b"700"]), after
        assert len(jobs.captures) == 1   # the same directory, reused
    finally:
        jobs.close()
