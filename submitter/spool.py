"""A local action's captured output too big to hold in memory, written out from its file."""

from __future__ import annotations

import os
from typing import BinaryIO

IN_MEMORY = 16 << 20   # bytes of one stream read into memory; more stays in its file
PIECE = 1 << 20


class Spool:
    """The open capture file of a stream over IN_MEMORY bytes (make prints a recipe's output
    whatever its size; reading 2 GiB of it whole took 2 GiB of memory). Output writes it in
    pieces, then closes it; the file is already unlinked, so closing frees its space."""

    def __init__(self, fh: BinaryIO, size: int):
        self.fh, self.size = fh, size

    def __len__(self) -> int:
        return self.size

    def endswith(self, suffix: bytes) -> bool:
        return self.size > 0 and os.pread(self.fh.fileno(), 1, self.size - 1) == suffix[-1:]

    def pieces(self):
        """Its bytes, PIECE at a time; closed at the end (or when the caller stops early)."""
        try:
            for offset in range(0, self.size, PIECE):
                piece = os.pread(self.fh.fileno(), min(PIECE, self.size - offset), offset)
                if not piece:   # cut short under us: what there is
                    return
                yield piece
        finally:
            self.close()

    def close(self) -> None:
        self.fh.close()


def take(fh: BinaryIO) -> bytes | Spool:
    """A capture file's contents: bytes when small, else the file itself as a Spool (which
    then owns it); a small one is closed here."""
    size = os.fstat(fh.fileno()).st_size
    if size > IN_MEMORY:
        return Spool(fh, size)
    try:
        return os.pread(fh.fileno(), size, 0) if size else b""
    finally:
        fh.close()
