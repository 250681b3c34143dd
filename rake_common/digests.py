"""Content addresses: the sha256 of a file, read in pieces so memory stays flat."""

from __future__ import annotations

import hashlib


def sha256_file(path: str) -> tuple[str, int]:
    """(hex digest, size) of a file."""
    with open(path, "rb", buffering=0) as fh:
        return sha256_stream(fh)


def sha256_stream(fh, most: int | None = None) -> tuple[str, int]:
    """(hex digest, size) of what is left to read from an open binary file, or of its next
    `most` bytes at most."""
    h, size = hashlib.sha256(), 0
    while chunk := fh.read(1 << 20 if most is None else min(1 << 20, most - size)):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size
