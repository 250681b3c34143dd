"""Helpers shared by the sandbox tests: listing trees, reading modes, comparing outputs."""

import hashlib
import os
import stat

from worker.sandbox import OutputFile


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree(root):
    """Every entry under `root`, relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def by_path(outputs):
    """Outputs by path, digest and size checked and then left out of the comparison."""
    for o in outputs:
        assert o.data is None or (o.digest == hashlib.sha256(o.data).hexdigest() and o.size == len(o.data))
    return {o.path: OutputFile(o.path, o.mode, o.data) for o in outputs}
