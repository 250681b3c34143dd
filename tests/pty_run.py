"""Run a program with a real pseudo-terminal as its stdout and stderr; collect what it drew."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_on_terminal(args: list[str], cwd, env: dict[str, str], columns: int = 100,
                    timeout: float = 60) -> tuple[int, bytes]:
    """(exit status, every byte written to the terminal); killed and failed after `timeout`."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST      # no "\n" -> "\r\n": every "\r" seen is the program's own
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:      # EIO: every writer has closed the terminal
                    break
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
        else:
            raise TimeoutError(f"{args[0]} still running after {timeout}s; drew {data!r}")
        return proc.wait(timeout=10), data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
