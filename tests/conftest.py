"""Shared fixtures: a process list that is always cleaned up."""

from __future__ import annotations

import pytest

from tests.fuzzing import TALLY
from tests.procs import Processes


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
