"""Ctrl-Z and fg: rake-submit's actions stop with it and go on with it, as make's recipes
do from the terminal; the run then ends as if nothing happened."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.procs import command, rake_env, wait_until


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def count(path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def settled(ticks) -> bool:
    """No tick for half a second."""
    before = {k: count(t) for k, t in ticks.items()}
    time.sleep(0.5)
    return {k: count(t) for k, t in ticks.items()} == before


@pytest.mark.timeout(90)
def test_ctrl_z_stops_local_and_embedded_actions_with_rake_submit_and_fg_resumes_them(procs, tmp_path):
    ticks = {"local": tmp_path / "local", "remote": tmp_path / "remote"}
    loop = "for i in $(seq 40); do echo $i >> {}; sleep 0.1; done"
    (tmp_path / "Rakefile").write_text("actionset1:\n"
                                       f"\t{loop.format(ticks['local'])}\n\tremote-{loop.format(ticks['remote'])}\n")
    # A process group of its own in this session, as a shell's job: SIGTSTP then stops it.
    proc = procs.start(command("rake-submit"), cwd=tmp_path, env=rake_env(), process_group=0,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: all(count(t) >= 3 for t in ticks.values()), 20)
    proc.send_signal(signal.SIGTSTP)
    assert wait_until(lambda: state(proc.pid) == "T", 10)
    assert wait_until(lambda: settled(ticks), 10)   # what was mid-step (or the spawner's pause) is through
    before = {k: count(t) for k, t in ticks.items()}
    time.sleep(1.0)
    assert {k: count(t) for k, t in ticks.items()} == before, "actions ran on while rake-submit was stopped"
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert {k: count(t) for k, t in ticks.items()} == {"local": 40, "remote": 40}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop", [signal.SIGTSTP, signal.SIGSTOP])   # SIGSTOP: nothing of ours hears it
def test_a_long_stop_with_a_real_broker_is_explained_and_the_run_still_ends_well(procs, tmp_path, stop):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\tremote-sleep 2; echo done > out.txt\n")
    # --broker-wait 1.5: a stop longer than it is ours, not a broker gone silent (exit 69)
    proc = procs.start(command("rake-submit") + ["--broker", endpoint, "--broker-wait", "1.5"], cwd=work,
                       env=rake_env(), process_group=0, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    proc.send_signal(stop)
    assert wait_until(lambda: state(proc.pid) == "T", 10)
    time.sleep(2.0)   # past the test's liveness window (heartbeats of 0.2 s) and --broker-wait
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (work / "out.txt").read_text() == "done\n"
    assert b"rake-submit was stopped for" in err and b"broker silent" not in err, err


@pytest.mark.timeout(90)
def test_time_stopped_by_ctrl_z_does_not_count_against_timeout(procs, tmp_path):
    began = tmp_path / "began"   # outside the sandbox: stopped once the action runs, not on a guess
    (tmp_path / "Rakefile").write_text(f"actionset1:\n\tremote-touch {began}; sleep 3; echo ok > x\n")
    proc = procs.start(command("rake-submit") + ["--timeout", "5"], cwd=tmp_path, env=rake_env(), process_group=0,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(began.exists, 20)
    proc.send_signal(signal.SIGTSTP)
    assert wait_until(lambda: state(proc.pid) == "T", 10)
    time.sleep(5.0)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (tmp_path / "x").read_text() == "ok\n"


@pytest.mark.timeout(60)
def test_kill_of_a_stopped_rake_submit_lets_its_local_actions_clean_up(procs, tmp_path):
    """bash's `kill %1` on a stopped job: SIGTERM, then SIGCONT."""
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttrap 'echo c > cleaned; exit 1' TERM; "
                                       "touch started; sleep 30 & wait\n")
    proc = procs.start(command("rake-submit"), cwd=tmp_path, env=rake_env(), process_group=0,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: (tmp_path / "started").exists(), 20)
    os.killpg(proc.pid, signal.SIGTSTP)
    assert wait_until(lambda: state(proc.pid) == "T", 10)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert (tmp_path / "cleaned").read_text() == "c\n"
