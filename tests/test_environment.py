"""rake on a machine set up differently from the developer's: locale, temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.procs import command, rake_env


def run(work, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("rake-submit"), cwd=work, env=rake_env(**env), capture_output=True, timeout=60)


@pytest.fixture
def latin1_locale(tmp_path) -> dict[str, str]:
    if shutil.which("localedef") is None:
        pytest.skip("no localedef to make an ISO-8859-1 locale")
    where = tmp_path / "locales"
    where.mkdir()
    made = subprocess.run(["localedef", "-f", "ISO-8859-1", "-i", "en_US", str(where / "en_US.ISO-8859-1")],
                          capture_output=True)
    if not (where / "en_US.ISO-8859-1").exists():
        pytest.skip(f"localedef could not make an ISO-8859-1 locale: {made.stderr[-200:]!r}")
    return {"LOCPATH": str(where), "LC_ALL": "en_US.ISO-8859-1"}


@pytest.mark.timeout(60)
def test_under_a_latin1_locale_commands_and_names_reach_the_system_as_the_rakefile_spells_them(
        tmp_path, latin1_locale):
    work = tmp_path / "w"
    work.mkdir()
    (work / "café.txt").write_text("hi\n")
    (work / "Rakefile").write_text("actionset1:\n\techo local-é\n\techo arrow-→\n"
                                   "\tremote-cat café.txt; echo remote-→ > out-é.txt\n\t\trequires café.txt\n",
                                   encoding="utf-8")
    res = run(work, **latin1_locale)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == sorted(["local-é".encode(), "arrow-→".encode(), b"hi"])
    assert (work / "out-é.txt").read_bytes() == "remote-→\n".encode()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [b"tmp\xffx", b"."])
def test_remote_actions_run_with_a_temp_dir_named_in_bytes_or_relative(tmp_path, name):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-echo a\n\tremote-echo b\n")
    temp = os.path.join(bytes(work), name)
    os.makedirs(temp, exist_ok=True)
    res = run(work, TMPDIR=os.fsdecode(name if name == b"." else temp))   # "." itself: relative
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == [b"a", b"b"]
    assert sorted(os.listdir(work)) == sorted(["Rakefile"] + ([] if name == b"." else [os.fsdecode(name)]))
