"""SIGINT and SIGTERM as an Interrupted exception, held back while the embedded cluster is mid-step."""

from __future__ import annotations


class Interrupted(Exception):
    """Raised from a signal handler; carries the exit status to use (130 or 143)."""

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
        self.handled = False   # an interrupt is being acted on: later ones change nothing

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0 and self.caught is not None:
            status, self.caught = self.caught, None
            raise Interrupted(status)


held = _Gate()


def acting_on_interrupt() -> None:
    """Called once an interrupt is being acted on (cancels sent, the summary to print): a
    second Ctrl-C, or `timeout` signalling rake-submit and then its process group, must not
    cut that short."""
    held.handled = True


def on_signal(signum: int, frame) -> None:
    """The handler for SIGINT and SIGTERM (exit status 128 + the signal's number)."""
    if held.handled:
        return
    if held.depth:
        held.caught = held.caught or 128 + signum
        return
    raise Interrupted(128 + signum)
