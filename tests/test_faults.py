"""The seeded fault suite at its default size (RAKE_FAULT_ROUNDS, RAKE_FAULT_SEED to change)."""

from __future__ import annotations

import os

import pytest

from tests.faults import run_suite

ROUNDS = int(os.environ.get("RAKE_FAULT_ROUNDS", "10"))
SEED = int(os.environ.get("RAKE_FAULT_SEED", "20261129"))


@pytest.mark.timeout(60 + ROUNDS * 60)
def test_every_injected_fault_is_survived_without_loss_duplicates_or_orphans(tmp_path, capsys):
    tally = run_suite(ROUNDS, SEED, tmp_path)
    with capsys.disabled():
        print("\n" + tally.line())
    assert tally.injected == ROUNDS
    assert (tally.survived, tally.lost, tally.duplicates, tally.orphans) == (ROUNDS, 0, 0, 0), tally.line()
