"""Shared fixtures: a process list that is always cleaned up."""

from __future__ import annotations

import signal

import pytest

from tests.fuzzing import TALLY
from tests.procs import Processes


def pytest_configure(config):
    """A test run started in the background by a script (an asynchronous list: `cmd &`)
    ignores SIGINT and SIGQUIT, and one under nohup SIGHUP; the programs the tests start
    would inherit that, and rightly ignore those signals, where the tests that send them
    expect a terminal's foreground job. So they start from the defaults."""
    for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGQUIT, signal.SIG_DFL),
                         (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, default)


@pytest.fixture
def procs():
    p = Processes()
    try:
        yield p
    finally:
        p.stop()


def pytest_terminal_summary(terminalreporter):
    """The fuzz figures (tests/test_fuzz.py), in every run that fuzzed anything."""
    if TALLY["inputs"]:
        terminalreporter.write_line(f"fuzz: {TALLY['inputs']} inputs, {TALLY['crashes']} crashes, "
                                    f"{TALLY['invalid accepted']} invalid accepted")


@pytest.fixture(autouse=True)
def _no_interrupt_carried_over():
    """An interrupt raised in one test (in-process) is not a burst for the next test's."""
    from submitter.interrupts import held
    held.handled, held.caught = None, None
    yield
    held.handled, held.caught = None, None
