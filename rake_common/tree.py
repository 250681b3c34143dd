"""Directory trees of any depth, walked and removed with a loop: os.walk (before Python 3.12)
and shutil.rmtree recurse once per level, so an action's `mkdir -p` of a thousand levels
would raise RecursionError in the worker or the submitter."""

from __future__ import annotations

import os
import stat


def walk(top: str):
    """As os.walk(top): (dirpath, dirnames, filenames), top-down, dirnames prunable in place;
    symbolic links to directories are listed in dirnames but never entered."""
    todo = [top]
    while todo:
        path = todo.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue   # gone, or not ours to read: as os.walk, skipped
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


def remove_tree(path: str) -> None:
    """Remove `path` and all below it as far as we can, also through directories a job made
    read-only (chmod 500): each is made ours to empty first. Errors are ignored; whoever
    needs the directory gone checks that it is."""
    todo = [(path, False)]
    while todo:
        top, emptied = todo.pop()
        if emptied:
            _ignore_errors(os.rmdir, top)
            continue
        try:
            if not stat.S_ISDIR(os.lstat(top).st_mode):
                os.unlink(top)
                continue
            os.chmod(top, 0o700)   # to list it and remove what is in it
            with os.scandir(top) as it:
                entries = list(it)
        except OSError:
            continue
        todo.append((top, True))
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                todo.append((entry.path, False))
            else:
                _ignore_errors(os.unlink, entry.path)


def _ignore_errors(fn, path: str) -> None:
    try:
        fn(path)
    except OSError:
        pass
