"""Shared fixtures: a process list that is always cleaned up."""

from __future__ import annotations

import pytest

from tests.procs import Processes


@pytest.fixture
def procs():
    p = Processes()
    try:
        yield p
    finally:
        p.stop()
