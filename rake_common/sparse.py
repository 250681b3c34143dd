"""Sparse files: zero chunks left as holes when written, holes skipped when copied."""

from __future__ import annotations

import errno
import os

_ZEROS = bytes(1 << 20)
COPY_SLICE = 4 << 20   # bytes copied between two pulses (at 20 MB/s still well inside a heartbeat)


def is_hole(view: memoryview) -> bool:
    """Whether a chunk (at most 1 MiB) is only zero bytes: not written, so a sparse file (a
    disk image, `truncate -s`) stays sparse instead of filling the disk. Most chunks differ
    at once."""
    if len(view) > len(_ZEROS) or view[:64] != memoryview(_ZEROS)[:min(64, len(view))]:
        return False
    data = view.tobytes()   # a memoryview compares item by item: 20 times slower
    return data == (_ZEROS if len(data) == len(_ZEROS) else bytes(len(data)))


def seek_extent(fd: int, offset: int, whence: int, size: int) -> int:
    """Where the data (SEEK_DATA) or the hole (SEEK_HOLE) at or after `offset` begins: `size`
    if none is before the end; where a file system cannot tell, all of it is data."""
    try:
        return min(os.lseek(fd, offset, whence), size) if offset < size else size
    except OSError as e:
        if e.errno == errno.ENXIO:   # no data from there on: a hole to the end
            return size
        return offset if whence == os.SEEK_DATA else size


def copy_into(src: int, dst: int, pulse=lambda: None) -> None:
    """All of `src` into `dst` (both open, dst empty), in slices with `pulse()` between them:
    copying gigabytes must not silence the loop's heartbeat for longer than a liveness window.
    Holes are skipped: a second output of the same sparse contents stays sparse too."""
    size = os.fstat(src).st_size
    sent = seek_extent(src, 0, os.SEEK_DATA, size)
    while sent < size:
        os.lseek(dst, sent, os.SEEK_SET)
        done = os.sendfile(dst, src, sent, min(COPY_SLICE, seek_extent(src, sent, os.SEEK_HOLE, size) - sent))
        if not done or os.fstat(src).st_size < size:
            raise OSError(errno.EIO, "the file shrank while it was copied")
        sent = seek_extent(src, sent + done, os.SEEK_DATA, size)
        pulse()
    os.ftruncate(dst, size)   # the length, where it ends in a hole
