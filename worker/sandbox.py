"""A job's sandbox directory: stage its input files in, collect what it produced out."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

from protocol.paths import check_relative_path, normalise_path
from rake_common.tree import walk
from rake_common.digests import sha256_stream

# What identifies an unchanged file: ctime cannot be set by the command, so a rewrite with
# the same size and a forged mtime is still caught.
Snapshot = dict[str, tuple[int, int, int, int]]
# What an action can do to a file it made that keeps us from reading it: that file is not
# returned, with a warning. Anything else (no descriptor left, no memory) is the worker's
# trouble: the job fails as an error, retried elsewhere, rather than lose outputs quietly.
THEIRS = {errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.ENXIO, errno.ENAMETOOLONG}
MAX_PATH = 4096   # bytes of an output's path: what the wire and the submitter's system take


class StagingError(Exception):
    """An input could not be placed in the sandbox (a bad name from the wire, or our disk)."""


@dataclass(frozen=True)
class OutputFile:
    path: str
    mode: int
    data: bytes | None       # None: too big to travel inline; fetch it by digest
    digest: str = ""
    size: int = 0


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stage_inputs(sandbox: str, files: list[tuple[str, int, bytes | str]]) -> Snapshot:
    """Place each (path, mode, source) under `sandbox`; every name is checked before any write.

    A source is the bytes themselves, or the path of a cached blob to copy (a copy, not a
    link: a command that rewrites its input must not corrupt the cache).
    """
    names = []
    for path, _, _ in files:
        problem = check_relative_path(path)
        if problem:
            raise StagingError(f"refused input name: {problem}")
        names.append(normalise_path(path))
    if len(set(names)) != len(names):
        raise StagingError("the same input name appears twice")
    snapshot: Snapshot = {}
    made: set[str] = set()
    for name, (_, mode, data) in zip(names, files):
        full = os.path.join(sandbox, name)
        try:
            _make_parents(sandbox, name, made)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                if isinstance(data, str):
                    _copy_into(fd, data)
                else:
                    _write_all(fd, data)
                os.fchmod(fd, mode & 0o777)
            finally:
                os.close(fd)
        except OSError as e:
            raise StagingError(f"cannot stage {name!r}: {e.strerror}") from e
    for name in names:
        snapshot[name] = _fingerprint(os.lstat(os.path.join(sandbox, name)))
    return snapshot


def _make_parents(sandbox: str, name: str, made: set[str]) -> None:
    """The directories above `name`, one level at a time: os.makedirs recurses once per level,
    and a path of a thousand levels would exhaust the stack."""
    path = sandbox
    for part in name.split("/")[:-1]:
        path = os.path.join(path, part)
        if path in made:
            continue
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):   # an input file is in the way
                raise
        made.add(path)


def refingerprint(sandbox: str, snapshot: Snapshot) -> Snapshot:
    """The snapshot again, after the worker itself changed the inputs' owner (and so ctime)."""
    return {name: _fingerprint(os.lstat(os.path.join(sandbox, name))) for name in snapshot}


def _copy_into(fd: int, source: str) -> None:
    with open(source, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:  # in-kernel copy: the bytes never pass through Python
            sent = os.sendfile(fd, src.fileno(), offset, size - offset)
            if sent == 0:
                raise OSError(5, "cached blob shrank while copying")
            offset += sent


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def scan_outputs(sandbox: str, snapshot: Snapshot) -> tuple[list[tuple[str, str, os.stat_result]], list[str]]:
    """(full path, relative path, lstat) of each regular file created or changed in
    `sandbox`, and what will not be returned with why. Only stats: nothing is read yet.

    Symlinks are never followed (not even to directories); devices, FIFOs and sockets are
    reported rather than sent.
    """
    found: list[tuple[str, str, os.stat_result]] = []
    skipped: list[str] = []
    if not snapshot and not _listing(sandbox):
        return found, skipped   # the usual no-op action: no need for a walk

    def unlisted(path: str, e: OSError) -> bool:
        if isinstance(e, PermissionError) and let_in(path):
            return True   # read it again
        if e.errno not in THEIRS:
            raise e
        skipped.append(f"{_shown(os.path.relpath(path, sandbox))}/: directory not returned, "
                       f"cannot be read ({e.strerror})")
        return False

    for dirpath, dirnames, filenames in walk(sandbox, unlisted):
        rel_dir = os.path.relpath(dirpath, sandbox)
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                skipped.append(f"{_shown(_rel(rel_dir, d))}: symlink not returned")
                dirnames.remove(d)
        for f in sorted(filenames):
            rel, full = _rel(rel_dir, f), os.path.join(dirpath, f)
            if len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH:
                skipped.append(f"{_shown(rel)}: not returned, its path is over {MAX_PATH} bytes")
                continue
            try:
                st = os.lstat(full)
            except OSError as e:   # ENAMETOOLONG: under MAX_PATH here, past PATH_MAX with our workdir
                if e.errno not in THEIRS:
                    raise
                skipped.append(f"{_shown(rel)}: not returned, cannot be read here ({e.strerror})")
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = "symlink" if stat.S_ISLNK(st.st_mode) else "special file"
                skipped.append(f"{_shown(rel)}: {kind} not returned")
            elif snapshot.get(rel) != _fingerprint(st):   # an unchanged input goes nowhere
                let_read(full, st)
                found.append((full, rel, st))
    return found, skipped


def sandbox_intact(sandbox: str) -> bool:
    """Whether the sandbox is still a directory: an action may remove it, or put a link in
    its place, and neither may be followed."""
    try:
        return stat.S_ISDIR(os.lstat(sandbox).st_mode)
    except OSError:
        return False


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except PermissionError:   # `chmod 000 .`
        if not let_in(directory):
            raise
        return os.listdir(directory)


# An action that runs as we do (no --user, and not root) makes files that are ours but may
# not be readable to us (chmod 200, a chmod 000 directory). They are opened up to be read;
# their modes as the action left them are what is sent. Root reads them as they are.

def let_in(path: str) -> bool:
    """Make a directory of ours that the action closed (chmod 000) readable; True if done."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return False
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IRWXU, follow_symlinks=False)
        return True
    except (OSError, NotImplementedError):   # NotImplementedError: a link swapped in
        return False


def let_read(path: str, st: os.stat_result) -> None:
    """Make an output of ours that the action made unreadable (chmod 200) readable."""
    if st.st_mode & stat.S_IRUSR or st.st_uid != os.geteuid() or st.st_uid == 0:
        return
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IRUSR, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass   # then reported as unreadable when it is opened


def collect_outputs(sandbox: str, snapshot: Snapshot, cache=None, inline_max: int = 1 << 20,
                    found=None, inputs: dict | None = None) -> tuple[list[OutputFile], list[str]]:
    """Every regular file created or changed in `sandbox` (read, hashed and, with a cache,
    moved into it), and what was skipped with why; `found` is a scan_outputs() already made.
    `inputs` (staged_as): an input whose content and mode are as staged is no output, even
    if the action touched it (`chmod +x` of an executable, `ln`, a `sed -i` that changed
    nothing): sent back, it would give the user's file a new mtime, and undo an edit made
    to it meanwhile."""
    files, skipped = found if found is not None else scan_outputs(sandbox, snapshot)
    outputs: list[OutputFile] = []
    skipped = list(skipped)
    for _, rel, st in files:
        item = _collect_one(sandbox, rel, st, cache, inline_max)
        if not isinstance(item, OutputFile):
            skipped.append(item)
        elif not inputs or inputs.get(rel) != (item.mode, item.digest):
            outputs.append(item)
    return outputs, skipped


def staged_as(files: list, digests: list) -> dict[str, tuple[int, str]]:
    """What collect_outputs compares an input with: its normalised path -> (mode, digest)."""
    return {normalise_path(path): (mode & 0o777, digest) for (path, mode, _), digest in zip(files, digests)}


def _collect_one(sandbox: str, rel: str, st: os.stat_result, cache, inline_max: int):
    mode = stat.S_IMODE(st.st_mode) & 0o777
    try:
        dir_fd, fd = open_beneath(sandbox, rel)
    except OSError as e:
        if e.errno not in THEIRS:
            raise
        return f"{_shown(rel)}: unreadable ({e.strerror})"
    name = rel.rsplit("/", 1)[-1]
    try:
        opened = os.fstat(fd)   # what adopt() must find at `name`: the file hashed here
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            return f"{_shown(rel)}: not returned, it was replaced while it was collected"
        # No more than the scan saw, and none if it changed since: something left running may
        # still write to it, and reading to its end would take without bound.
        with os.fdopen(fd, "rb", closefd=False) as fh:
            if st.st_size > inline_max and cache is not None:
                digest, size = sha256_stream(fh, st.st_size)
                if _changed(fd, st):
                    return f"{_shown(rel)}: not returned, it changed while it was collected"
                cache.adopt(name, digest, size, opened, dir_fd)   # a rename: the big output is never copied
                return OutputFile(rel, mode, None, digest, size)
            data = fh.read(st.st_size)
        if _changed(fd, st):
            return f"{_shown(rel)}: not returned, it changed while it was collected"
        digest = hashlib.sha256(data).hexdigest()
        if cache is not None:
            cache.adopt(name, digest, len(data), opened, dir_fd)  # kept: the next actionset may need it here
        return OutputFile(rel, mode, data, digest, len(data))
    finally:
        os.close(fd)
        os.close(dir_fd)


def _changed(fd: int, st: os.stat_result) -> bool:
    now = os.fstat(fd)
    return (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns)


def open_beneath(root: str, rel: str) -> tuple[int, int]:
    """(its directory, the file) of `rel` inside `root`, both open: each component opened
    relative to the one before, never through a symlink (O_NOFOLLOW alone guards only the
    last one, and a process the action left may swap a directory for a link to anywhere the
    worker can reach), nor blocking on a FIFO swapped in. The caller closes both."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in rel.split("/")[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = inner
        return dir_fd, os.open(rel.rsplit("/", 1)[-1], flags | os.O_NONBLOCK, dir_fd=dir_fd)
    except BaseException:
        os.close(dir_fd)
        raise


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


def _shown(name: str) -> str:
    """A name fit for a message: undecodable bytes as \\xNN, at most 200 characters."""
    text = name.encode(errors="surrogateescape").decode(errors="backslashreplace")
    return text if len(text) <= 200 else f"{text[:100]}...{text[-97:]}"
