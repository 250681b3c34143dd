"""The submitter's file traffic: inputs by digest (inline when small and new to a worker,
served in chunks when a worker asks), and outputs fetched in chunks when too big to inline."""

from __future__ import annotations

import errno
import os
import tempfile

from protocol import Chunk, FileRef, Want
from rake_common.tempdirs import locked_tempdir, sweep
from rake_common.tree import remove_tree
from submitter.files import copy_into
from submitter.inputs import InputIndex
from submitter.rakefile import Action
from worker.incoming import Incoming
from worker.transfer import Outgoing

INLINE_MAX = 1 << 20        # a file up to this size may ride inside its JOB ...
JOB_INLINE_MAX = 8 << 20    # ... while the JOB carries no more than this in all,
JOB_INLINE_FILES = 512      # and no more files than this: the worker stores them on its loop
MAX_FETCHES = 4             # big outputs downloaded at once (each holds up to 8 MiB in the broker)


INCOMING = ".rake-incoming-"   # + random: where downloads are written before their rename
LOCK = ".lock"                 # in it, flocked while its rake-submit lives


class FileTraffic:
    def __init__(self, root: str, window: float = 0.0):
        self.root = root
        sweep(INCOMING, LOCK, root)   # what runs killed with -9 left, whether we download or not
        self.index = InputIndex(root)
        self.outgoing = Outgoing(self.index.locate, window)   # window: the liveness window
        self.tmpdir: str | None = None
        self.base = root   # where tmpdir is, or was last tried
        self.incoming = Incoming(self._temp_path, limit=MAX_FETCHES)
        self.known: dict[str, set[str]] = {}    # worker id -> digests it has (that we know of)
        self.sent_bytes = 0        # file bytes: inline inputs and served chunks
        self.received_bytes = 0    # file bytes: inline outputs and fetched chunks
        # job id -> its inputs as sent: path -> (mode, digest), or None where resends differed
        self.sent_as: dict[int, dict[str, tuple[int, str] | None]] = {}

    def job_files(self, worker: str, action: Action, job: int) -> tuple[tuple[FileRef, ...], list]:
        """FileRefs for an action's inputs, with the bytes of small ones the worker may lack."""
        refs, blobs, inline = [], [], 0
        has = self.known.setdefault(worker, set())
        for req in action.requires:
            mode, digest, size = self.index.describe(req.path)
            blob = None
            # Bounded per JOB: it bypasses flow control, so a slow worker must not make
            # the broker hold much of it.
            if (size <= INLINE_MAX and digest not in has and inline + size <= JOB_INLINE_MAX
                    and len(blobs) < JOB_INLINE_FILES):
                inline += size
                blob = len(blobs)
                blobs.append(self.index.read(req.path))
                self.sent_bytes += size
            has.add(digest)   # big ones it fetches once, by digest, and keeps
            refs.append(FileRef(path=req.path, mode=mode, blob=blob, digest=digest, size=size))
        sent = {ref.path: (ref.mode, ref.digest) for ref in refs}
        before = self.sent_as.get(job)
        if before is not None:   # a resend, same id: a worker that holds the job ignores it and
            # runs what came first; one that lost it runs this. Which, we cannot tell.
            sent = {path: v if before.get(path) == v else None for path, v in sent.items()}
        self.sent_as[job] = sent
        return tuple(refs), blobs

    def changed_here(self, job: int, path: str) -> bool:
        """Whether `path`, an input of `job` (normalised), is no longer here as it was sent:
        the user edited, replaced or removed it while the action ran. An output at that path
        would silently undo that (an editor's save during a remote `clang-format -i`)."""
        sent = self.sent_as.get(job, {})
        if path not in sent:
            return False
        if sent[path] is None:   # edited between two sends of the job: either may have run
            return True
        try:
            mode, digest, _ = self.index.describe(path)   # hashed again only if its stat changed
        except OSError:
            return True
        return (mode, digest) != sent[path]

    def delivered(self, job: int) -> None:
        """Its outputs were written or refused: what was sent for it is of no more use."""
        self.sent_as.pop(job, None)

    def learned(self, worker: str, refs, blobs) -> None:
        """A worker produced these outputs: it holds them in its cache now."""
        self.known.setdefault(worker, set()).update(f.digest for f in refs if f.digest)
        # Each frame once: outputs with the same contents share one (worker/result.py).
        shared = {f.blob for f in refs if f.blob is not None and f.blob < len(blobs)}
        self.received_bytes += sum(len(memoryview(blobs[i])) for i in shared)

    def on_want(self, want: Want) -> list[list]:
        frames = self.outgoing.on_want(want.sender, want)
        self.sent_bytes += sum(len(memoryview(f[2])) for f in frames if len(f) > 2)
        return frames

    def fetch(self, worker: str, ref: FileRef) -> list[list]:
        if self.incoming.busy(ref.digest):
            return []
        return self.incoming.start(worker, ref.digest, ref.size)

    def on_chunk(self, chunk: Chunk, blobs: list):
        self.received_bytes += sum(len(memoryview(b)) for b in blobs)
        return self.incoming.on_chunk(chunk, blobs[0] if blobs else b"")

    def copy_of(self, tmp: str, pulse=lambda: None) -> str:
        """A second temporary copy, for two outputs with the same content."""
        other = self._temp_path()
        with open(tmp, "rb") as src, open(other, "xb") as dst:
            copy_into(src.fileno(), dst.fileno(), pulse)
        return other

    def _temp_path(self) -> str:
        # Inside the working directory, so a finished download is renamed, never copied; made
        # again if an action removed it (`git clean -fdx`, `rm -rf .[!.]*`).
        if self.tmpdir is not None and not os.path.isdir(self.tmpdir):
            self.close()
        if self.tmpdir is None:
            try:
                self.base = self.root
                self.tmpdir, self.lock_fd = locked_tempdir(INCOMING, LOCK, self.root)
            except OSError as e:   # a read-only checkout with a writable build/ (a mount):
                if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise          # downloads wait in the temp dir, and are copied over
                self.base = tempfile.gettempdir()
                self.tmpdir, self.lock_fd = locked_tempdir(INCOMING, LOCK, self.base)
        return os.path.join(self.tmpdir, f"part-{os.urandom(8).hex()}")

    def where(self) -> str:
        """Where downloads are written (or were to be), to name in an error about it."""
        return self.base

    def close(self) -> None:
        """Remove the download directory: after each actionset, so later actions never see
        it (`ls -A`, `tar`, `git status`), and at the end of the run."""
        if self.tmpdir is not None:
            remove_tree(self.tmpdir)
            os.close(self.lock_fd)
            self.tmpdir = None


def inline_bytes(refs, blobs) -> int:
    """What the outputs sent inline weigh: their blobs, not the sizes a worker announced."""
    return sum(len(memoryview(blobs[f.blob])) for f in refs if f.blob is not None and f.blob < len(blobs))
