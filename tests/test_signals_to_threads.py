"""Signals the kernel hands to one of rake-submit's helper threads (it may, when the main
thread already has one pending): the main thread, where Python runs the handlers, must still
act on them at once, wherever it waits."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.local_interrupt_helpers import start, stopped, token
from tests.procs import command, processes_running, wait_until

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's system call number is x86-64's")
TGKILL = 234


def helper_threads(pid: int) -> list[int]:
    """The threads of `pid` but its main one and libzmq's (which block every signal)."""
    def name(tid):
        with open(f"/proc/{pid}/task/{tid}/comm") as fh:
            return fh.read().strip()
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid and not name(t).startswith("ZMQbg"))


def to_another_thread(pid: int, sig: int, every: bool = False) -> None:
    """The signal, handed to a helper thread of `pid` (or to each), as the kernel may do with
    one sent to the process."""
    others = helper_threads(pid)
    assert others, "rake-submit has a helper thread of its own (its output's, at least)"
    libc = ctypes.CDLL(None, use_errno=True)
    for tid in others if every else others[-1:]:
        assert libc.syscall(TGKILL, pid, tid, sig) == 0, os.strerror(ctypes.get_errno())


@pytest.mark.timeout(60)
def test_an_interrupt_a_helper_thread_takes_still_stops_a_local_only_run_at_once(tmp_path):
    """Before, the main thread slept in its poll (for up to an hour, nothing else being due)
    until the action ended: the handler runs only when the main thread runs."""
    t = token("44")
    work = tmp_path / "w"
    proc = start(work, f"actionset1:\n\ttouch ready; sleep {t}\n")
    assert wait_until(lambda: (work / "ready").exists() and processes_running(f"sleep {t}"), 15)
    to_another_thread(proc.pid, signal.SIGTERM)
    status, err = stopped(proc, timeout=20)
    assert status == 128 + signal.SIGTERM, err
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 5)


@pytest.mark.timeout(60)
def test_an_interrupt_a_helper_thread_takes_while_looking_for_a_broker_stops_it_at_once(tmp_path):
    """Before, it waited out --connect-timeout."""
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    with socket.socket() as silent:   # takes the connection, never says a word: nothing wakes the wait
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proc = subprocess.Popen(command("rake-submit") + ["--broker", "tcp://127.0.0.1:%d" % silent.getsockname()[1],
                                                          "--connect-timeout", "30"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)   # well into the wait for an answer
        began = time.monotonic()
        to_another_thread(proc.pid, signal.SIGTERM)
        status, err = stopped(proc, timeout=20)
    assert status == 128 + signal.SIGTERM, err
    assert time.monotonic() - began < 10


@pytest.mark.timeout(60)
def test_an_interrupt_a_helper_thread_takes_while_output_waits_for_its_reader_stops_at_once(tmp_path):
    """At the end of a run the output is drained; its reader (a pager) has stopped reading."""
    (tmp_path / "Rakefile").write_text("actionset1:\n\thead -c 1000000 /dev/zero | tr '\\0' x\n")
    proc = subprocess.Popen(command("rake-submit"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)   # the action is over; the pipe is full and nobody reads it
        began = time.monotonic()
        to_another_thread(proc.pid, signal.SIGTERM, every=True)
        assert wait_until(lambda: proc.poll() is not None, 10), "waited for the reader"
        assert proc.returncode == 128 + signal.SIGTERM and time.monotonic() - began < 10
    finally:
        stopped(proc, timeout=20)
