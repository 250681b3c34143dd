"""A bounded, content-addressed store of file blobs on disk, kept between runs of a worker."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
import threading
import time

from rake_common.tree import unlink_quietly
from worker import eviction
from worker.eviction import cost
TEMP_NAME = re.compile(r"tmp-[0-9]+-[0-9]+-[0-9]+")   # temp_path()
SUBDIR_NAME = re.compile(r"[0-9a-f]{2}")               # path(): the digest's first two characters


class CacheBusy(OSError):
    """Another live worker uses this cache directory."""




def _mark(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a stored blob from one changed in place since (ctime cannot be forged)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class BlobCache:
    """`dir/ab/abcdef...`: one file per sha256. Safe to use from several threads."""

    def __init__(self, directory: str, limit: int):
        self.dir, self.limit = directory, limit
        self.lock = threading.Lock()
        # One blob file put in place or removed at a time (adopt, add_bytes, has, eviction),
        # each with its index entry: re-entrant, as adopt asks has().
        self.placing = threading.RLock()
        self.index: dict[str, tuple[int, float, tuple]] = {}   # digest -> (size, last used, mark)
        self.total = 0
        self.next_check = 0.0   # of the free space on the disk (keep_free)
        self.evictable = 0.0    # no blob can go for size before this time (_evict)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # One worker per store: another would evict under it, and clear its downloads at start.
        self.lock_fd: int | None = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise CacheBusy(f"cache directory {directory} is in use by another rake-worker: give each "
                            "worker its own --cache-dir (or, with the default one, its own --name)") from None
        self._load()
        self._evict()   # over the limit when left (a burst), or since lowered: not kept so

    def close(self) -> None:
        """Let another worker use the directory."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def _load(self) -> None:
        """Index the blobs a previous run left. Only what can be nothing but ours is touched:
        `--cache-dir` may name a directory that holds other things (`~/.cache`)."""
        for sub in os.listdir(self.dir):
            subdir = os.path.join(self.dir, sub)
            if TEMP_NAME.fullmatch(sub) and stat.S_ISREG(os.lstat(subdir).st_mode):
                os.unlink(subdir)   # a download of a worker that died mid-way
            elif SUBDIR_NAME.fullmatch(sub) and stat.S_ISDIR(os.lstat(subdir).st_mode):
                for name in filter(is_digest, os.listdir(subdir)):
                    st = os.lstat(os.path.join(subdir, name))
                    if stat.S_ISREG(st.st_mode):
                        # An action may have set a future mtime: "last used" is never later than now.
                        self.index[name] = (st.st_size, min(st.st_mtime, time.time()), _mark(st))
                        self.total += cost(st.st_size)

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, digest[:2], digest)

    def has(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is here as stored: the same file, size, mtime and ctime (and at
        `size`, when the sender says). One deleted, cut short or rewritten behind our back
        (an action running as our user can reach the store; ctime it cannot set back) is
        forgotten, so it is fetched or taken again, never staged wrong or not at all."""
        with self.lock:
            entry = self.index.get(digest)
        if entry is None:
            return False
        try:
            st = os.stat(self.path(digest))
            actual, same = st.st_size, _mark(st) == entry[2]
        except OSError:
            actual, same = -1, False
        if same and (not size or size == actual):   # 0: a sender that did not say
            with self.lock:   # a job will stage it: in use (keep_free spares it)
                if self.index.get(digest) == entry:
                    self.index[digest] = (entry[0], time.time(), entry[2])
            return True
        if same:
            # Not at the size asked for: that JOB is wrong, or the file was cut short while
            # we were down. Either way it is fetched; storing that replaces the file. Not
            # deleted (it may be whole, and needed by other submitters' jobs), nor hashed
            # here (gigabytes, on the loop).
            return False
        with self.placing:
            with self.lock:
                if self.index.get(digest) != entry:   # evicted and stored again meanwhile: not ours
                    return digest in self.index
                del self.index[digest]
                self.total -= cost(entry[0])
            unlink_quietly(self.path(digest))   # no adopt can have put a new one there meanwhile
        return False

    def use(self, digest: str) -> str | None:
        """The blob's path, marking it recently used; None if not here."""
        with self.lock:
            entry = self.index.get(digest)
            if entry is None:
                return None
            self.index[digest] = (entry[0], time.time(), entry[2])
        return self.path(digest)

    def mark_of(self, digest: str) -> tuple:
        """What tells the file stored for `digest` now from another (_mark)."""
        return _mark(os.stat(self.path(digest)))

    def size(self, digest: str) -> int:
        """A stored blob's size in bytes (0 if it is not here)."""
        entry = self.index.get(digest)
        return entry[0] if entry else 0

    def temp_path(self) -> str:
        if not os.path.isdir(self.dir):   # (see _ensure_dir)
            self._make_again()
        return os.path.join(self.dir, f"tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}")

    def adopt(self, tmp: str, digest: str, size: int, expect: os.stat_result | None = None,
              dir_fd: int | None = None) -> str:
        """Move a verified file into the store (rename: no copy); returns its path. `expect`:
        the stat of the file that was hashed; a file swapped since (say for a symlink, by a
        process the action left) is refused, never followed. `dir_fd`: `tmp` is a name in
        that directory (an output, reached without following links on the way)."""
        final = self.path(digest)
        self._ensure_dir(digest[:2])
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        part = None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (
                    expect is not None and (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino)):
                raise OSError(errno.ESTALE, "it was replaced while it was collected")
            # An action's user owns its outputs and may have linked one elsewhere to change
            # it later: the store moves only files nobody else can reach, and copies the rest.
            movable = st.st_nlink == 1 and st.st_uid == os.geteuid()
            # One stored already, whole (an output equal to an input, or to another job's),
            # stays: jobs about to stage it know it by its inode. Placing and noting are one
            # step under the lock, or two adopts of one digest take each other's file for a
            # swapped one; a copy (slow for a big one) is made before taking it.
            with self.placing:
                kept = self.has(digest, size)
                done = kept or (movable and self._move(fd, st, tmp, final, dir_fd))
                if done:
                    self._note(digest, size, os.stat(final))
            if kept and dir_fd is None and os.path.dirname(tmp) == self.dir:
                unlink_quietly(tmp)   # a download of ours, not needed after all
            if not done:   # someone else's file, or on another filesystem: copied
                part = self._copy(fd, digest)
                with self.placing:
                    if not self.has(digest, size):
                        os.replace(part, final)
                        part = None
                    self._note(digest, size, os.stat(final))
                os.unlink(tmp, dir_fd=dir_fd)
        finally:
            os.close(fd)
            if part is not None:
                unlink_quietly(part)
        self._evict()
        return final

    def _note(self, digest: str, size: int, st: os.stat_result) -> None:
        """Index a blob just put in place, as it is now (has() compares with this)."""
        with self.lock:
            old = self.index.get(digest)
            self.total += cost(size) - (cost(old[0]) if old else 0)
            self.index[digest] = (size, time.time(), _mark(st))

    def _move(self, fd: int, st: os.stat_result, tmp: str, final: str, dir_fd: int | None) -> bool:
        """Rename into place (False: another filesystem, copy instead)."""
        os.fchmod(fd, 0o444)
        try:
            os.replace(tmp, final, src_dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.EXDEV:
                return False
            raise
        moved = os.lstat(final)
        if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino):   # swapped after the open
            os.unlink(final)
            raise OSError(errno.ESTALE, "it was replaced while it was stored")
        return True

    def _copy(self, fd: int, digest: str) -> str:
        """A read-only copy from the open descriptor, hashing what is copied (the path may point
        elsewhere by now, and the bytes may have changed since they were hashed): its path."""
        part = self.temp_path()
        h = hashlib.sha256()
        try:
            with open(part, "wb") as out:
                offset = 0
                while chunk := os.pread(fd, 1 << 20, offset):
                    h.update(chunk)
                    out.write(chunk)
                    offset += len(chunk)
            if h.hexdigest() != digest:
                raise OSError(errno.ESTALE, "it changed while it was stored")
            os.chmod(part, 0o444)
        except BaseException:
            unlink_quietly(part)
            raise
        return part

    def add_bytes(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (checked against `digest` when given); returns its digest."""
        actual = hashlib.sha256(data).hexdigest()
        if digest and actual != digest:
            raise ValueError(f"blob does not match its digest {digest[:12]}")
        with self.placing:   # as adopt: stored and noted in one step (at most 1 MiB, inline)
            if self.has(actual, len(data)):   # (one cut short while we were down is replaced)
                return actual
            # Written read-only from the start, straight into place: many small inputs arrive
            # on the loop thread, so each costs as few system calls as it can.
            self._ensure_dir(actual[:2])
            tmp = self.temp_path()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.replace(tmp, self.path(actual))
            except BaseException:   # a full disk, say: leave no half-written temporary behind
                unlink_quietly(tmp)
                raise
            finally:
                os.close(fd)
            self._note(actual, len(data), os.stat(self.path(actual)))
        self._evict()
        return actual

    def _ensure_dir(self, sub: str) -> None:
        """Asked each time (one mkdir): a tmp cleaner may empty the store under us, and a
        directory remembered as made would fail every store after that until a restart."""
        try:
            os.mkdir(os.path.join(self.dir, sub), 0o700)
        except FileExistsError:
            pass
        except FileNotFoundError:   # the store itself was removed
            self._make_again()
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)

    def _make_again(self) -> None:
        """The store, removed under us, made again with its lock: our flock held the removed
        file, and another worker could have taken the new store as its own."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:   # one did, in the moment it was gone: ours stays in use
            os.close(fd)
            return
        if self.lock_fd is not None:
            os.close(self.lock_fd)
        self.lock_fd = fd

    def keep_free(self, now: float, in_use=()) -> int:
        """Give blobs back while the disk is short of space or inodes (worker/eviction.py);
        at most once a second, when blobs past the limit may have aged enough to go too.
        `in_use`: digests that queued jobs will stage, used now (a queue may outlast RECENT)."""
        if now < self.next_check:
            return 0
        self.next_check = now + 1.0
        if self.lock_fd is not None and os.fstat(self.lock_fd).st_nlink == 0:
            self._make_again()   # a tmp cleaner took our lock file (nothing touches it): or another worker could
        for digest in in_use:
            self.use(digest)
        self._evict()
        return eviction.keep_free(self)

    def _evict(self) -> None:
        eviction.evict(self)
