"""Jobs waiting for input blobs that are not on this worker yet, and the fetches they need."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from protocol import Job
from protocol.paths import printable

Key = tuple[str, int]
Files = list[tuple[str, int, str]]      # (path, mode, digest) once every blob is here


class Fetch(NamedTuple):
    """Ask `client` (the job's submitter) for a blob."""
    client: str
    digest: str
    size: int


class MemoryBlobs:
    """The blob store interface, in memory: for unit tests of the core."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def has(self, digest: str, size: int | None = None) -> bool:
        return digest in self.blobs and size in (None, len(self.blobs[digest]))

    def add_bytes(self, data, digest: str | None = None) -> str:
        actual = hashlib.sha256(data).hexdigest()
        if digest and actual != digest:
            raise ValueError("digest mismatch")
        self.blobs[actual] = bytes(data)
        return actual


class InputGate:
    def __init__(self, store) -> None:
        self.store = store                       # BlobCache, or MemoryBlobs in tests
        self.waiting: dict[Key, tuple[Job, Files, set[str]]] = {}
        self.fetching: dict[str, Fetch] = {}     # one fetch per digest, from one submitter

    def admit(self, key: Key, job: Job, blobs: list) -> tuple[Files | None, list[Fetch]]:
        """(files, []) when every input is here; else (None, fetches) and the job waits.

        Inline blobs go into the store first; one that does not match its digest is never
        used: the file is fetched again instead.
        """
        files: Files = []
        missing: set[str] = set()
        added: dict = {}   # (blob, digest) -> its stored digest, or None: each hashed once
        for f in job.files:   # (3000 names for one 1 MiB blob held the loop up for seconds)
            digest, stored = f.digest, False
            if f.blob is not None:
                if (f.blob, f.digest) not in added:
                    added[f.blob, f.digest] = self._add(blobs[f.blob], f.digest)
                stored = added[f.blob, f.digest] is not None
                digest = added[f.blob, f.digest] if stored else digest
            if not stored and not self.store.has(digest, f.size if f.blob is None else None):
                missing.add(digest)
            files.append((f.path, f.mode, digest))
        if "" in missing:
            raise ValueError("an input has neither its bytes nor a digest to fetch them by")
        if not missing:
            return files, []
        self.waiting[key] = (job, files, missing)
        sizes = {f.digest: f.size for f in job.files}
        fetches = []
        for d in sorted(missing - set(self.fetching)):
            self.fetching[d] = Fetch(job.client, d, sizes.get(d, 0))
            fetches.append(self.fetching[d])
        return None, fetches

    def _add(self, data, digest: str) -> str | None:
        try:
            return self.store.add_bytes(data, digest or None)
        except ValueError:
            return None   # corrupted on the way: fetched instead

    def fetched(self, digest: str, ok: bool, theirs: bool = True) -> tuple[list, list, list[Fetch]]:
        """A fetch ended: (jobs now ready as (key, job, files), jobs that cannot run, fetches
        to start). A fetch that failed by its submitter's doing (`theirs`: it lost the file,
        stalled, sent garbage) fails only that submitter's jobs: the others' wait for the blob
        from one of them (a submitter whose copy changed, or a hostile one naming the same
        digest, must not fail them). One that failed by ours (a full disk) fails every one."""
        ready, failed = [], []
        source = self.fetching.pop(digest, None)
        mine = source.client if source is not None and theirs and not ok else None
        for key, (job, files, missing) in list(self.waiting.items()):
            if digest not in missing or (mine is not None and key[0] != mine):
                continue
            missing.discard(digest)
            if not ok:
                del self.waiting[key]
                failed.append((key, job))
            elif not missing:
                del self.waiting[key]
                ready.append((key, job, files))
        return ready, failed, self._fetch_again(digest) if mine is not None else []

    def drop(self, key: Key) -> Job | None:
        entry = self.waiting.pop(key, None)
        return entry[0] if entry else None

    def drop_client(self, client: str) -> tuple[list[str], list[Fetch]]:
        """Forget a departed submitter's jobs: (its fetches to abandon, fetches to start
        instead, from another submitter whose jobs need the same blob)."""
        for key in [k for k in self.waiting if k[0] == client]:
            del self.waiting[key]
        abandoned = [d for d, f in self.fetching.items() if f.client == client]
        restarted = []
        for digest in abandoned:
            del self.fetching[digest]
            restarted += self._fetch_again(digest)
        return abandoned, restarted

    def _fetch_again(self, digest: str) -> list[Fetch]:
        """The blob from the submitter of another job still waiting for it, if there is one."""
        for (other, _), (job, _, missing) in self.waiting.items():
            if digest in missing:
                size = next((f.size for f in job.files if f.digest == digest), 0)
                self.fetching[digest] = Fetch(other, digest, size)
                return [self.fetching[digest]]
        return []

    def present(self):
        """The digests waiting jobs have here already (the rest they wait for)."""
        return (d for _, files, missing in self.waiting.values() for _, _, d in files if d not in missing)

    def keys(self) -> list[Key]:
        return list(self.waiting)


def input_named(job, digest: str) -> str:
    """The input a fetched digest was for, as the user named it (the first, if several)."""
    path = next((f.path for f in job.files if f.digest == digest), None)
    return "an input" if path is None else f"input {printable(path)!r}"
