"""The submitter's side of `requires` files: checked before an actionset starts, hashed
once per run while unchanged, read when a worker needs them."""

from __future__ import annotations

import errno
import os
import stat

from submitter.rakefile import ActionSet
from rake_common.digests import sha256_stream


def missing_requires(aset: ActionSet, root: str) -> list[str]:
    """One message per `requires` file of `aset` that is not a regular, readable file in root."""
    problems = []
    for action in aset.actions:
        for req in action.requires:
            why = input_problem(root, req.path)
            if why:
                problems.append(f"line {req.line}: required file {_shown(req.path)} {why} "
                                f"(needed by: {_shown(action.command, quote=False)})")
    return problems


def _shown(text: str, quote: bool = True, most: int = 200) -> str:
    """A name or command for a one-line message: quoted, and cut short when very long."""
    cut = f"... ({len(text)} characters)" if len(text) > most else ""
    text = text[:most]
    return (repr(text) if quote else text) + cut


def unreadable(err: OSError, root: str) -> str:
    """Why an input could not be read, naming it as the user wrote it (not an errno and an
    absolute path)."""
    why = err.strerror or str(err)
    return f"{os.path.relpath(err.filename, root)!r}: {why}" if err.filename is not None else why


def input_problem(root: str, path: str) -> str | None:
    """Why `path` cannot be a requires file now (missing, not a regular file, ...), or None."""
    full = os.path.join(root, path)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    # Links are followed as make follows them (`inc -> real-inc`, `config.h -> config.linux.h`),
    # as long as the file they lead to is inside the working directory (SPEC section 3).
    if os.path.islink(full) and not _inside(root, os.path.realpath(full)):
        return "is a symbolic link to a file outside the working directory"
    if _crosses_symlink_dir(root, path) and not _inside(root, os.path.realpath(full)):
        return "is reached through a symbolic link to a directory outside the working directory"
    if not os.access(full, os.R_OK):
        return "is not readable"
    return None


def _inside(root: str, resolved: str) -> bool:
    top = os.path.realpath(root)
    return resolved.startswith(top.rstrip(os.sep) + os.sep)


def _crosses_symlink_dir(root: str, path: str) -> bool:
    parts = path.split("/")[:-1]
    for i in range(len(parts)):
        if os.path.islink(os.path.join(root, *parts[: i + 1])):
            return True
    return False


class InputIndex:
    """Digest, size and mode of each required file, hashed once per run while unchanged."""

    def __init__(self, root: str):
        self.root = root
        self.known: dict[str, tuple[tuple, tuple[int, str, int]]] = {}   # path -> (stat key, info)
        self.paths: dict[str, list[str]] = {}                           # digest -> paths hashed to it

    def describe(self, path: str) -> tuple[int, str, int]:
        """(mode, sha256, size), read in pieces so a huge input never sits in memory."""
        full = os.path.join(self.root, path)
        st = os.stat(full)
        cached = self.known.get(path)
        if cached and cached[0] == _stat_key(st):
            return cached[1]
        # Changed since the check at the actionset's start (a local action of the same
        # actionset, the user): checked again, as then. A FIFO swapped in would block the
        # loop for ever on its open, a link out of the tree would be followed.
        why = input_problem(self.root, path)
        if why:
            raise OSError(errno.EINVAL, f"required file {path!r} {why} (it changed since the actionset started)")
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            st = os.fstat(fd)   # the file hashed, whatever the name leads to by now
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, f"required file {path!r} is not a regular file "
                                            f"(it changed since the actionset started)")
            digest, size = sha256_stream(fh)
        info = (stat.S_IMODE(st.st_mode) & 0o777, digest, size)
        self.known[path] = (_stat_key(st), info)
        if path not in self.paths.setdefault(digest, []):
            self.paths[digest].append(path)
        return info

    def locate(self, digest: str) -> str | None:
        """A file hashed to `digest` that has not changed since (as far as its stat tells):
        two files may share contents, and one may change while the other does not."""
        for path in self.paths.get(digest, ()):
            full = os.path.join(self.root, path)
            try:
                st = os.stat(full)
            except OSError:
                continue
            key, info = self.known[path]
            if key == _stat_key(st) and info[1] == digest:
                return full
        return None

    def read(self, path: str) -> bytes:
        fd = os.open(os.path.join(self.root, path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):   # swapped since describe(): never block on it
                raise OSError(errno.EINVAL, f"required file {path!r} is not a regular file "
                                            f"(it changed since the actionset started)")
            return fh.read()


def _stat_key(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
