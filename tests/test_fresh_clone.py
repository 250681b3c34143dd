"""What a new user or contributor meets first in a clone: the README's two commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import BIN, command, rake_env, wait_until
from worker.watch import disk_full

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_tracks_no_rakefile_outside_the_examples_and_the_test_cases():
    # `rake-submit` at the top of a clone reads ./Rakefile: a leftover experiment there
    # (one was committed, with HOSTS = localhost:47597) greets a new user with "no broker
    # reachable", or, with a broker there, fills the clone with its outputs.
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True, timeout=30).stdout.decode().split("\0")
    stray = [p for p in tracked if Path(p).name == "Rakefile" and not p.startswith(("examples/", "tests/"))]
    assert stray == []


def test_the_programs_the_tests_start_run_this_source_tree(tmp_path):
    # The tests start the installed console scripts. From a `pip install .` (not -e) those
    # import a copy in site-packages, so after an edit `python -m pytest` would check the
    # in-process modules of the tree and the programs of the old copy: the README installs
    # with -e for the tests.
    script = command("rake-submit")[0]
    if Path(script).parent != BIN:
        pytest.skip(f"the programs here are not this Python's console scripts ({script})")
    env = {k: v for k, v in rake_env().items() if k != "PYTHONPATH"}
    where = subprocess.run([sys.executable, "-c", "import submitter; print(submitter.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert where.returncode == 0, where.stderr
    package_root = Path(where.stdout.strip()).resolve().parent.parent   # .venv may sit in the tree
    assert package_root == ROOT, (
        f"{script} runs rake from {package_root}, not from this tree ({ROOT}): "
        f"reinstall with: {BIN}/pip install -e '.[test]'")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_root_worker_without_user_warns_that_its_actions_run_as_root(procs, tmp_path):
    # The README says a root worker should be given --user; it used to say only that the
    # process count was not limited.
    log = tmp_path / "worker.log"
    (tmp_path / "w").mkdir()
    procs.start(command("rake-worker") + ["--broker", "tcp://127.0.0.1:1", "--workdir", str(tmp_path / "w"),
                                          "--isolate", "none"], stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    assert wait_until(lambda: "slots, broker" in log.read_text(), 20), log.read_text()
    assert "warning: actions run as root: give --user USER" in log.read_text()


def test_a_full_worker_disk_is_named_so_that_an_embedded_cluster_user_sees_it_is_tmpdirs(tmp_path):
    # The embedded local cluster works under TMPDIR (often a small tmpfs): "the worker's disk
    # is full" alone sent a user to look at the project's disk, which had room.
    mount = subprocess.run(["df", "--output=target", str(tmp_path)], capture_output=True, text=True,
                           check=True, timeout=30).stdout.splitlines()[-1].strip()
    assert disk_full(str(tmp_path), below=1 << 62).endswith(f" KiB free on {mount})")
