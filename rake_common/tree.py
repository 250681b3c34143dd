"""Directory trees of any depth, walked and removed with a loop: os.walk (before Python 3.12)
and shutil.rmtree recurse once per level, so an action's `mkdir -p` of a thousand levels
would raise RecursionError in the worker or the submitter."""

from __future__ import annotations

import errno
import os
import resource


def walk(top: str, onerror=None):
    """As os.walk(top): (dirpath, dirnames, filenames), top-down, dirnames prunable in place;
    symbolic links to directories are listed in dirnames but never entered. A directory that
    cannot be listed is skipped, after `onerror(path, error)` if given; an onerror that
    returns True (it made the directory readable) has it read once more."""
    todo = [top]
    while todo:
        path = todo.pop()
        try:
            entries = _entries(path)
        except OSError as e:
            if onerror is None or onerror(path, e) is not True:
                continue   # gone, or not ours to read: as os.walk, skipped
            try:
                entries = _entries(path)
            except OSError:
                continue
        dirnames, filenames = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirnames if is_dir else filenames).append(entry.name)
        yield path, dirnames, filenames
        for name in reversed(dirnames):   # depth first, in listing order, like os.walk
            sub = os.path.join(path, name)
            if not os.path.islink(sub):
                todo.append(sub)


def _entries(path: str) -> list:
    with os.scandir(path) as it:
        return list(it)


def remove_tree(path: str) -> None:
    """Remove `path` and all below it as far as we can, also through directories a job made
    read-only (chmod 500). Every step goes by descriptor and never follows a symbolic link,
    even one swapped in while we work: a process an action left running may still own a
    directory in the tree, and we may be root. Errors are ignored; whoever needs the
    directory gone checks that it is."""
    top = os.path.abspath(path)
    try:
        parent = os.open(os.path.dirname(top), getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    except OSError:
        return
    try:
        fd = _open_dir(parent, os.path.basename(top))
        if fd is not None:
            _remove_below([(fd, parent, os.path.basename(top), _names(fd))])
    finally:
        os.close(parent)


def empty_tree(fd: int) -> None:
    """Remove everything in the open directory `fd` (which stays open), as remove_tree does."""
    names = _names(fd)
    for name in names:
        sub = _open_dir(fd, name)
        if sub is not None:
            _remove_below([(sub, fd, name, _names(sub))])


def _remove_below(todo: list[tuple[int, int, str, list[str]]]) -> None:
    """Empty and remove each directory on the stack, (its fd, its parent's fd, its name,
    names left in it), depth first; closes the descriptors it was given."""
    try:
        while todo:
            fd, up, name, names = todo[-1]
            if names:
                child = names.pop()
                sub = _open_dir(fd, child)
                if sub is not None:
                    todo.append((sub, fd, child, _names(sub)))
                continue
            todo.pop()
            os.close(fd)
            try:
                os.rmdir(name, dir_fd=up)
            except NotADirectoryError:   # swapped for a link meanwhile: the link goes, unfollowed
                _ignore_errors(lambda: os.unlink(name, dir_fd=up))
            except OSError:
                pass
    finally:
        for fd, *_ in todo:
            os.close(fd)


def _open_dir(parent: int, name: str) -> int | None:
    """A descriptor of the directory `name` in `parent`, made ours to empty; None once a
    file, a link or nothing is there (the first two are removed)."""
    try:
        os.unlink(name, dir_fd=parent)   # a file, or a symbolic link itself
        return None
    except FileNotFoundError:
        return None
    except OSError:
        pass   # a directory (EISDIR), or not ours to remove
    try:
        os.chmod(name, 0o700, dir_fd=parent, follow_symlinks=False)
        chmodded = True
    # ValueError: a C library too old to chmod without following; NotImplementedError: a
    # link swapped in since the unlink above
    except (OSError, ValueError, NotImplementedError):
        chmodded = False
    for _ in range(2):
        try:   # O_NOFOLLOW: a directory swapped for a link since is refused, and the link removed
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            if not chmodded:
                _ignore_errors(lambda: os.fchmod(fd, 0o700))   # a 500 one, at least, can be emptied
            return fd
        except OSError as e:
            if e.errno != errno.EMFILE or not _more_descriptors():
                break
    _ignore_errors(lambda: os.unlink(name, dir_fd=parent))
    return None


def _more_descriptors() -> bool:
    """A descriptor per level: a tree deeper than the soft open-files limit (1024 by
    default) needs that limit raised towards the hard one. True if it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    more = min(hard, soft * 4) if hard != resource.RLIM_INFINITY else soft * 4
    if more <= soft:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (more, hard))
    except (ValueError, OSError):
        return False
    return True


def _names(fd: int) -> list[str]:
    for _ in range(2):
        try:
            return os.listdir(fd)   # takes a descriptor of its own
        except OSError as e:
            if e.errno != errno.EMFILE or not _more_descriptors():
                break
    return []


def _ignore_errors(step) -> None:
    try:
        step()
    except (OSError, ValueError, NotImplementedError):   # the last two: chmod of a link, unfollowed
        pass


def unlink_quietly(name: str, dir_fd: int | None = None) -> None:
    """Remove a file that may be gone already (ours to clean up: nothing to report)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def same_mtime(files: list[tuple[str, int]]) -> None:
    """Give files (name, directory descriptor) the latest mtime among them, from this
    filesystem's own clock. A `z.h` an action wrote before `a.o` must not come out newer
    than it, or make and ninja rebuild `a.o` next time; equal times are up to date for both."""
    if len(files) < 2:
        return
    stats = [(name, fd, os.stat(name, dir_fd=fd, follow_symlinks=False)) for name, fd in files]
    latest = max(st.st_mtime_ns for _, _, st in stats)
    for name, fd, st in stats:
        if st.st_mtime_ns != latest:
            os.utime(name, ns=(st.st_atime_ns, latest), dir_fd=fd, follow_symlinks=False)
