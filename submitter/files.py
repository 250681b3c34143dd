"""The submitter's side of output files: written safely and atomically into the project."""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from protocol.paths import check_relative_path, normalise_path
from rake_common.sparse import copy_into
from rake_common.tree import same_mtime, unlink_quietly


class OutputRefused(Exception):
    """An output could not be written where it belongs (unsafe name, clash, disk)."""


class PartlyWritten(OutputRefused):
    """A rename into place failed after others had succeeded (a file made immutable, a mount
    point): those are not undone, and are named rather than reported as never written."""

    def __init__(self, message: str, written: list[str]):
        super().__init__(message)
        self.written = written


MAX_OPEN_DIRS = 64


class Staged(NamedTuple):
    """An output written to a temporary name next to its place, not yet renamed there."""
    path: str
    tmp: str
    line: int


class OutputWriter:
    """Writes one actionset's outputs into `root`, atomically, refusing unsafe names and
    clashes. An action's outputs are staged first and renamed into place together by
    commit(), so a refused one leaves the working directory as it was (abort()): no file
    written, no directory made for it left behind."""

    def __init__(self, root: str):
        self.root = root
        self.written: dict[str, int] = {}   # path -> Rakefile line of the action that made it
        self.written_under: dict[str, int] = {}   # each directory of those -> the first such line
        self.staged: dict[str, Staged] = {}   # this action's, by path
        self.under: dict[str, str] = {}       # each directory of a staged path -> that path
        self.made: list[str] = []             # directories made while staging, parents first
        self.dirs: dict[str, int] = {}        # a descriptor per directory they go to
        # Temporary names: random per writer, then counted. Random per file, 32 bits collided
        # in one of six runs of an action making 40 000 files in one directory.
        self.tmp_prefix, self.tmp_count = f".rake-{os.getpid()}-{os.urandom(4).hex()}-", 0
        self.pulse = lambda: None   # called during long copies (Deliveries sets it)

    def write(self, path: str, mode: int, data, line: int) -> str:
        return self._one(path, mode, line, data=data)

    def place(self, path: str, mode: int, tmp: str, line: int) -> str:
        """Like write, for bytes already in the file `tmp` (a download): renamed into place."""
        return self._one(path, mode, line, download=tmp)

    def _one(self, path: str, mode: int, line: int, **source) -> str:
        try:
            self.stage(path, mode, line, **source)
        except OutputRefused:
            self.abort()   # no directory left open by a refused one
            raise
        return self.commit()[0]

    def stage(self, path: str, mode: int, line: int, data=None, download: str | None = None) -> None:
        """`data`, or the file `download`, at a temporary name in the output's directory."""
        path = self._check(path, line)
        dir_fd = self._dir_fd(path)
        # Not named after the output: a name near the 255-byte limit would leave no room.
        self.tmp_count += 1
        tmp = f"{self.tmp_prefix}{self.tmp_count}.tmp"
        try:
            if _is_dir(dir_fd, os.path.basename(path)):
                raise OutputRefused(f"cannot write {path!r}: a directory is in the way")
            if download is not None:
                _move_in(download, dir_fd, tmp, mode, self.pulse)
            else:
                _write_new(dir_fd, tmp, data, mode)
        except OSError as e:
            unlink_quietly(tmp, dir_fd)
            raise OutputRefused(f"cannot write {path!r}: {e.strerror}") from e
        except BaseException:   # an interrupt mid-copy: no temporary file left in the project
            unlink_quietly(tmp, dir_fd)
            raise
        self.staged[path] = Staged(path, tmp, line)
        for parent in _parents(path):
            self.under.setdefault(parent, path)

    def commit(self) -> list[str]:
        """Rename every staged output into place; their paths."""
        done: list[str] = []
        try:
            for s in self.staged.values():
                dir_fd = self._dir_fd(s.path)
                try:
                    os.rename(s.tmp, os.path.basename(s.path), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except OSError as e:   # something changed since it was staged, or will not be replaced
                    raise PartlyWritten(f"cannot write {s.path!r}: {e.strerror}", done) from e
                self.written[s.path] = s.line
                for parent in _parents(s.path):
                    self.written_under.setdefault(parent, s.line)
                done.append(s.path)
            self.made = []   # they hold outputs now
            self._same_time(done)
            return list(self.staged)
        finally:
            self.abort()   # whatever was not renamed

    def _same_time(self, paths: list[str]) -> None:
        """One mtime for all of one action's outputs (see same_mtime): they were written in
        name order or as downloads ended, not in the order the action made them."""
        try:
            same_mtime([(os.path.basename(p), self._dir_fd(p)) for p in paths])
        except (OSError, OutputRefused):
            pass   # only times: the outputs are in place (one removed since, a read-only mount)

    def abort(self) -> None:
        """Remove the staged files not renamed into place, and the directories made for
        them that are still empty; let go of their directories."""
        for s in self.staged.values():
            try:
                unlink_quietly(s.tmp, self._dir_fd(s.path))
            except OutputRefused:
                pass   # its directory is gone, and the file with it
        self._close_dirs()
        self._remove_made()
        self.staged, self.under = {}, {}

    def _remove_made(self) -> None:
        """Deepest first; one that is not empty (an output renamed into it before a later
        rename failed, or a file someone else put there) stays."""
        made, self.made = self.made, []
        if not made:
            return
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return   # the working directory is gone, and they with it
        try:
            for d in reversed(made):
                try:
                    os.rmdir(d, dir_fd=fd)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def _dir_fd(self, path: str) -> int:
        """A descriptor of the output's directory, kept while the action's outputs are
        staged; at most MAX_OPEN_DIRS at once (an action may write into thousands of
        directories), the others opened again when needed."""
        directory = os.path.dirname(path)
        fd = self.dirs.get(directory)
        if fd is None:
            if len(self.dirs) >= MAX_OPEN_DIRS:
                self._close_dirs()
            fd = self.dirs[directory] = self._open_parent(path)
        return fd

    def _close_dirs(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs = {}

    def _check(self, path: str, line: int) -> str:
        problem = check_relative_path(path)
        if problem:
            raise OutputRefused(f"refused output name: {problem}")
        path = normalise_path(path)
        if path in self.written:
            raise OutputRefused(f"{path!r} is produced by two actions (lines {self.written[path]} and {line})")
        if path in self.staged:
            raise OutputRefused(f"{path!r} comes back twice from line {line}")
        # Checked before anything is made: one output cannot be both a file and the
        # directory of another (`a` and `a/b`), of this action or an earlier one of the
        # actionset; which of them would land depends on nothing.
        if path in self.under or path in self.written_under:
            other = (f"output {self.under[path]!r} of the same action" if path in self.under
                     else f"an output of line {self.written_under[path]}")
            raise OutputRefused(f"cannot write {path!r}: it is also the directory of {other}")
        for parent in _parents(path):
            if parent in self.staged or parent in self.written:
                other = ("of the same action" if parent in self.staged
                         else f"of line {self.written[parent]}")
                raise OutputRefused(f"cannot write {path!r}: output {parent!r} {other} is a file, not a directory")
        return path

    def _open_parent(self, path: str) -> int:
        """An fd of the output's directory, created as needed, never through a symlink."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            parts = path.split("/")[:-1]
            for i, part in enumerate(parts):
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)   # as mkdir -p: the umask decides
                    self.made.append("/".join(parts[: i + 1]))
                except FileExistsError:
                    pass
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as e:
            os.close(fd)
            raise OutputRefused(f"cannot write {path!r}: {e.strerror}{_hint(e)}") from e
        return fd


def _parents(path: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _move_in(download: str, dir_fd: int, name: str, mode: int, pulse=lambda: None) -> None:
    """A finished download to `name` in the output's directory: renamed, or, where that
    directory is on another filesystem (a mount, a volume), copied and then removed."""
    os.chmod(download, mode & 0o777)
    try:
        os.rename(download, name, dst_dir_fd=dir_fd)
        _take_group(dir_fd, name)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    with open(download, "rb") as src:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        try:
            copy_into(src.fileno(), fd, pulse)
            os.fchmod(fd, mode & 0o777)
        finally:
            os.close(fd)
    os.unlink(download)


def _write_new(dir_fd: int, name: str, data, mode: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode & 0o777)
    finally:
        os.close(fd)


def _take_group(dir_fd: int, name: str) -> None:
    """A file renamed in from the download directory keeps that directory's group; one
    made in a setgid directory (a team's build tree) takes the directory's, as one written
    there does."""
    directory = os.fstat(dir_fd)
    if directory.st_mode & stat.S_ISGID:
        try:
            os.chown(name, -1, directory.st_gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            pass   # not a member of that group: as cp would, it keeps ours


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def current_umask() -> int:
    """Ours, which the JOB carries so that an action makes its files as it would here.
    Read, not set and reset: os.umask() would briefly give any thread's child umask 0."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022




def _hint(e: OSError) -> str:
    return " (a symlink or file in the way?)" if e.errno in (errno.ELOOP, errno.ENOTDIR) else ""
