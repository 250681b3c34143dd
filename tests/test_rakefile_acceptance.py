"""The shared acceptance Rakefiles parse, or fail with the lines they expect."""

import json
import re
from pathlib import Path

import pytest

from submitter.rakefile import Rakefile, RakefileError, parse_rakefile


ACCEPTANCE = Path(__file__).resolve().parents[2] / "shared" / "acceptance"
ACCEPTANCE_RAKEFILES = sorted(ACCEPTANCE.glob("*/**/Rakefile"))


# --- the acceptance cases -----------------------------------------------------------------

def test_acceptance_cases_are_found():
    if not ACCEPTANCE.is_dir():
        pytest.skip(f"no acceptance cases at {ACCEPTANCE}")
    assert len(ACCEPTANCE_RAKEFILES) >= 10


def expected_stderr(rakefile_path):
    front = rakefile_path.with_name("EXPECTED.md").read_text().split("---")[1]
    match = re.search(r"^stderr_contains:\s*(\[.*\])\s*$", front, re.M)
    return json.loads(match.group(1)) if match else []


@pytest.mark.parametrize("path", ACCEPTANCE_RAKEFILES, ids=lambda p: str(p.parent.relative_to(ACCEPTANCE)))
def test_acceptance_rakefile_parses_or_fails_as_expected(path):
    data = path.read_bytes()
    if not path.parent.relative_to(ACCEPTANCE).parts[0].startswith("20-"):
        assert isinstance(parse_rakefile(data), Rakefile)
        return
    with pytest.raises(RakefileError) as info:
        parse_rakefile(data)
    wanted = expected_stderr(path)
    lines = [int(w) for w in wanted if w.isdigit()]
    assert lines and [p.line for p in info.value.problems] == lines
    report = info.value.format("Rakefile")
    for word in wanted:
        assert word in report
