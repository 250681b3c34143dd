"""The RESULT message a worker sends for a job's Outcome, with its blob frames."""

from __future__ import annotations

from protocol import FileRef, Job, Load, Result
from worker.execute import Outcome


def unsent_result(job: Job, why: str, load: Load) -> Result:
    """What is said instead of a RESULT that could not be encoded: an error to retry."""
    return Result(job=job.job, client=job.client, status="error", attempt=job.attempt, error=why[:4000], load=load)


def result_message(job: Job, o: Outcome, load: Load) -> tuple[Result, list]:
    """The RESULT of `job` and its blob frames: stdout, stderr, then inline output files.
    Empty output travels as no frame at all (most actions print nothing). Outputs with the
    same contents share one frame: 100,000 empty files are one frame, not over the limit."""
    blobs = [data for data in (o.stdout, o.stderr) if data]
    stdout, stderr = (0 if o.stdout else None), (len(blobs) - 1 if o.stderr else None)
    frame: dict = {}   # digest (or, without one, the file itself) -> its blob index
    for f in o.outputs:
        if f.data is not None and frame.setdefault(f.digest or id(f), len(blobs)) == len(blobs):
            blobs.append(f.data)
    outputs = tuple(FileRef(path=f.path, mode=f.mode, digest=f.digest, size=f.size,
                            blob=None if f.data is None else frame[f.digest or id(f)])
                    for f in o.outputs)
    return Result(
        job=job.job, client=job.client, status=o.status, code=min(max(o.code, 0), 255),
        stdout=stdout, stderr=stderr, outputs=outputs, skipped=tuple(o.skipped), error=o.error[:4000],
        elapsed=o.elapsed, attempt=job.attempt, load=load, truncated=tuple(o.truncated),
    ), blobs
