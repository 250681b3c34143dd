"""Ctrl-Z and fg: the run's actions stop and go on with rake-submit, as a make's recipes do
(they are in the terminal's process group; ours are in sessions of their own)."""

from __future__ import annotations

import os
import signal
from typing import Callable


def follow_stops(pause: Callable[[bool], None]) -> Callable[[], None]:
    """From now on SIGTSTP (Ctrl-Z) calls pause(False), then stops this process; once it is
    continued (fg, bg) pause(True). Returns what undoes that. Not where SIGTSTP is ignored
    (a shell without job control)."""
    if signal.getsignal(signal.SIGTSTP) == signal.SIG_IGN:
        return lambda: None

    def on_stop(signum, frame) -> None:
        pause(False)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)   # stopped here until SIGCONT
        finally:   # `kill %1`: the interrupt that came while stopped is raised here, after this
            signal.signal(signal.SIGTSTP, on_stop)
            pause(True)

    signal.signal(signal.SIGTSTP, on_stop)
    return lambda: signal.signal(signal.SIGTSTP, signal.SIG_DFL)
