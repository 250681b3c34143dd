"""End to end on loopback: how local and remote actions run, fail and leave processes."""

from __future__ import annotations

import subprocess

import pytest

from tests.procs import command, processes_running, submit
from tests.cluster_helpers import sleep_token, write_rakefile


@pytest.mark.timeout(30)
def test_what_a_local_action_starts_in_the_background_runs_on_as_under_make(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\t(sleep 1; echo bg > bg.txt) > /dev/null 2>&1 &\n"
                          "actionset2:\n\tsleep 3; cat bg.txt\n")
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"bg\n"


@pytest.mark.timeout(30)
def test_a_remote_action_leaving_a_process_succeeds_by_its_exit_status_and_the_process_is_killed(tmp_path):
    token = sleep_token("21")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-(sleep {token}) > /dev/null 2>&1 & echo quick\n"
                                          "actionset2:\n\techo next\n")
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"quick\nnext\n"
    assert b"warning: line 2: killed: it left processes running when it ended (1 killed)" in res.stderr
    assert not processes_running(f"sleep {token}")


@pytest.mark.timeout(30)
def test_syntax_errors_are_all_reported_with_exit_2_and_nothing_runs(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\ttouch ran\nBOGUS = 1\n\t\trequires\nactionset1:\n")
    res = submit([], cwd=work)
    assert res.returncode == 2
    lines = res.stderr.decode().splitlines()
    assert [ln.split(":")[1] for ln in lines] == ["3", "4", "5"], lines
    assert all(ln.startswith("Rakefile:") for ln in lines)
    assert not (work / "ran").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("keep_going", [False, True])
def test_after_a_failure_no_queued_action_of_the_actionset_starts_unless_keep_going(procs, tmp_path, keep_going):
    # One worker, 2 slots: `exit 5` frees its slot at once, before the submitter hears of it;
    # the slot must not take the next queued action (SPEC section 3).
    endpoint = procs.cluster(tmp_path, ("w1",), 2)[1]
    queued = "".join(f"\tremote-touch q{n}\n" for n in range(1, 5))
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exit 5\n\tremote-sleep 1\n{queued}")
    res = submit(["--broker", endpoint] + ["-k"] * keep_going, cwd=work)
    assert res.returncode == 1, res.stderr
    assert b"FAILED: [code=5] exit 5" in res.stderr
    made = sorted(p.name for p in work.glob("q*"))
    assert made == (["q1", "q2", "q3", "q4"] if keep_going else []), res.stderr
    assert b"retrying" not in res.stderr


@pytest.mark.timeout(60)
def test_a_worker_given_a_relative_workdir_runs_actions(procs, tmp_path):
    _, endpoint = procs.broker()
    (tmp_path / "wk").mkdir()
    procs.start(command("rake-worker") + ["--broker", endpoint, "--name", "rel", "--workdir", "wk"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tmp_path / "src"
    work.mkdir()
    # Two actionsets: the second job starts after the first moved the spawner's directory.
    (work / "Rakefile").write_text("actionset1:\n\tremote-echo first > first.txt\n"
                                   "actionset2:\n\tremote-echo ran in $RAKE_WORKER > out.txt\n")
    res = submit(["--broker", endpoint, "--worker-wait", "15"], work)
    assert res.returncode == 0, res.stderr
    assert (work / "out.txt").read_text() == "ran in rel\n"
