"""SIGINT, SIGTERM, SIGHUP and SIGQUIT as an Interrupted exception, held back while the embedded cluster is mid-step."""

from __future__ import annotations

import contextlib
import os
import signal
import time

INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(Exception):
    """Raised from a signal handler; carries the exit status to use (128 + the signal)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Gate:
    """While held, an interrupt waits for the end of the held section. The embedded broker
    and worker run on rake-submit's loop, and an exception in the middle of one of their
    steps could leave, say, a process started but not yet recorded, which nothing would
    then kill."""

    def __init__(self):
        self.depth = 0
        self.caught: int | None = None
        self.handled: float | None = None   # since when an interrupt is acted on
        self.ending = False

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0 and self.caught is not None:
            status, self.caught = self.caught, None
            self.handled = time.monotonic()   # see on_signal
            raise Interrupted(status)


held = _Gate()


INSIST_AFTER = 1.0   # seconds: a signal that much after the first one is a user insisting


def acting_on_interrupt() -> None:
    """Called once an interrupt is being acted on (cancels sent, the summary to print): the
    burst of a double Ctrl-C, or `timeout` signalling rake-submit and then its process group,
    must not cut that short. One more a second later is someone insisting: it is raised."""
    held.handled = time.monotonic()


def ending() -> None:
    """rake-submit has done its work and Python is ending (joining its threads): an
    exception raised now would only print a traceback from the interpreter's shutdown."""
    held.ending = True


_wake: list[int] = []   # the read end, once made


def signal_wake() -> int | None:
    """A descriptor that becomes readable when a signal arrives, for the loop's poll, or None
    before wake_on_signals. The kernel may hand a signal to any thread, and one taken by a
    helper thread (local actions', output's, zmq's) does not interrupt the main thread's poll:
    Python runs the handler only once that thread runs again, an hour later for a local-only run."""
    return _wake[0] if _wake else None


def wake_on_signals() -> None:
    """From the main thread, once: every signal with a Python handler also writes a byte."""
    if not _wake:
        r, w = os.pipe()
        for fd in (r, w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        _wake.append(r)


def drain_signal_wake() -> None:
    with contextlib.suppress(OSError):
        while os.read(_wake[0], 4096):
            pass


def on_signal(signum: int, frame) -> None:
    """The handler for INTERRUPTS (exit status 128 + the signal's number)."""
    if held.handled is not None and time.monotonic() - held.handled < INSIST_AFTER:
        return
    if held.ending:   # everything is cleaned up: someone insisting need not wait for threads
        os._exit(128 + signum)
    if held.depth:
        held.caught = held.caught or 128 + signum
        return
    # From now on, not only once its handler calls acting_on_interrupt(): a second signal of
    # a burst (a closed terminal: the kernel's SIGHUP, then the shell's) landing before that
    # call raised a second Interrupted out of the handler, which then neither signalled the
    # local actions (SIGKILL instead: no trap ran) nor said what ran.
    held.handled = time.monotonic()
    raise Interrupted(128 + signum)
