"""One job from start to end on the calling thread, for tools and tests; the worker's loop
uses worker.jobs.Jobs directly."""

from __future__ import annotations

import select
import time

from worker.execute import JobDirs, Outcome
from worker.jobs import Jobs
from worker.limits import NONE, Limits


def run_job(key, command: str, files: list, root, worker: str, timeout: float | None,
            spawner=None, cache=None, limits: Limits = NONE) -> Outcome:
    """One job from start to end on the calling thread (for tools and tests; the worker's
    loop uses Jobs directly). `root` is a directory or a JobDirs pool."""
    dirs = root if isinstance(root, JobDirs) else JobDirs(root, reuse=False)
    jobs = Jobs(dirs, worker, spawner, cache, limits=limits)
    done = jobs.start(key, command, files, timeout, time.monotonic())
    while not done:   # ends: the job's own timeout bounds it, and a killed job reports
        wait = min(1.0, max(0.0, jobs.next_deadline() - time.monotonic()))
        ready, _, _ = select.select(jobs.fds(), [], [], wait)
        jobs.on_tick(time.monotonic())
        for fd in ready:
            for exit in jobs.on_readable(fd):
                done += jobs.finish(exit)
    jobs.close()
    return done[0][1]
