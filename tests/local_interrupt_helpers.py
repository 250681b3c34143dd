"""Starting rake-submit on a Rakefile of local actions, and stopping it, for the interrupt tests."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from tests.procs import command


def token(prefix: str) -> str:
    """A `sleep` argument no other process on the machine uses, to find ours by."""
    return f"{prefix}.{os.getpid()}{int(time.time() * 1000) % 100000}"


def start(work: Path, rakefile: str) -> subprocess.Popen:
    work.mkdir()
    (work / "Rakefile").write_text(rakefile)
    no_cores = lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # noqa: E731 (SIGQUIT dumps core)
    return subprocess.Popen(command("rake-submit"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=no_cores)


def stopped(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, bytes]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err
