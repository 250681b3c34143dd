"""Helpers shared by the end-to-end cluster tests: a broker with workers, a Rakefile, a sleep token."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cluster(procs, tmp_path: Path, names=("w1", "w2"), slots: int = 2) -> str:
    return procs.cluster(tmp_path, names, slots)[1]


def write_rakefile(work: Path, text: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "Rakefile").write_text(text)
    return work


def sleep_token(prefix: str) -> str:
    """A `sleep` argument no other process on the machine uses, to find ours by."""
    return f"{prefix}.{os.getpid()}{int(time.time() * 1000) % 100000}"
