"""Each job directory's captured stdout and stderr: unnamed files, made once and reused
(but for a --user worker's jobs)."""

from __future__ import annotations

import tempfile


class Captures(dict):
    """jobdir -> its (stdout, stderr) files. Opening files is a fair part of a short job's
    cost, so they are kept with their directory and emptied between jobs; not when actions
    run as another user (`reuse` false): a process one left behind, escaped from the kill,
    would hold the same open files, and so write into and read later jobs' output."""

    def __init__(self, reuse: bool = True):
        super().__init__()
        self.reuse = reuse

    def open(self, jobdir: str, tmpdir: str) -> tuple:
        files = self.get(jobdir)
        if files is None:
            files = self[jobdir] = (tempfile.TemporaryFile(dir=tmpdir, buffering=0),
                                    tempfile.TemporaryFile(dir=tmpdir, buffering=0))
        return files

    def empty(self, jobdir: str) -> None:
        """Emptied as the directory goes back to the pool, not when it is next taken: a pooled
        one may wait long, and the unnamed files' blocks (up to --max-disk) are freed only by
        this or by closing them."""
        if not self.reuse:
            return self.drop(jobdir)
        try:
            for f in self.get(jobdir, ()):   # offsets are shared with the action's streams
                f.truncate(0)
                f.seek(0)
        except OSError:
            self.drop(jobdir)

    def drop(self, jobdir: str) -> None:
        for f in self.pop(jobdir, ()):
            f.close()

    def close(self) -> None:
        for jobdir in list(self):
            self.drop(jobdir)
