"""Interrupting rake-submit while local actions run: as under make, they get the signal first
and may clean up; what ignores it is killed after a grace period; nothing survives."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from submitter.local import ProcessRegistry
from tests.local_interrupt_helpers import start, stopped, token
from tests.procs import command, processes_running, wait_until


def interrupted(work: Path, action: str, sig: int = signal.SIGINT) -> tuple[int, bytes, str]:
    """rake-submit running the local `action` (its "{t}" a unique sleep), given `sig` once
    the action has written the file `ready` (its traps are set by then): (exit status,
    stderr, the sleep's token). (Its shell's own command line names the sleep too.)"""
    t = token(str(int(sig) + 40))
    proc = start(work, f"actionset1:\n\t{action.format(t=t)}\n")
    assert wait_until(lambda: (work / "ready").exists() and processes_running(f"sleep {t}"), 15)
    proc.send_signal(sig)
    status, err = stopped(proc)
    return status, err, t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT])
def test_an_interrupted_local_action_gets_the_signal_and_cleans_up_as_under_make(tmp_path, sig):
    status, err, t = interrupted(tmp_path / "w", "trap 'rm -f part.txt ready; echo removing part.txt >&2; "
                                 "echo cleaned > cleaned.txt; exit 1' INT TERM QUIT; echo half > part.txt; "
                                 "touch ready; sleep {t}; mv part.txt whole.txt", sig)
    assert status == 128 + sig, err
    assert b"removing part.txt" in err   # what it printed, its trap's words too, as make would show
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["Rakefile", "cleaned.txt"]
    assert b"Traceback" not in err
    assert not processes_running(f"sleep {t}")


@pytest.mark.timeout(60)
def test_a_local_action_that_ignores_the_interrupt_is_killed_after_a_grace_period(tmp_path):
    status, err, t = interrupted(tmp_path / "w", "trap '' INT; touch ready; sleep {t}; echo late > late.txt")
    assert status == 130, err
    # Sent SIGKILL before rake-submit ended, though on a loaded machine it may take a moment to die.
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 5)
    assert not (tmp_path / "w" / "late.txt").exists()


@pytest.mark.timeout(60)
def test_what_a_local_action_started_in_the_background_does_not_outlive_the_interrupt(tmp_path):
    """A shell starts `cmd &` with SIGINT ignored: it survives the signal that ends its shell."""
    status, err, t = interrupted(tmp_path / "w", "sleep {t} & touch ready; wait")
    assert status == 130, err
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 5)


@pytest.mark.timeout(60)
def test_a_user_insisting_during_the_grace_cuts_it_short_but_still_sees_what_ran(tmp_path):
    """A second Ctrl-C, a second after the first: the action is killed at once, and what it
    printed, its FAILED line and the summary are shown all the same."""
    t = token("46")
    work = tmp_path / "w"
    proc = start(work, f"actionset1:\n\ttrap '' INT; echo printed-before >&2; touch ready; sleep {t}\n")
    assert wait_until(lambda: (work / "ready").exists() and processes_running(f"sleep {t}"), 15)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.4)   # past the burst a single Ctrl-C may make, within the 2 s grace
    proc.send_signal(signal.SIGINT)
    status, err = stopped(proc)
    assert status == 130, err
    assert b"printed-before" in err and b"FAILED: [" in err and b"0 actions ok, 1 failed" in err, err
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 5)


@pytest.mark.timeout(60)
def test_a_local_action_does_not_outlive_a_rake_submit_killed_by_sigkill(tmp_path):
    """As make's recipes die when make's process group is killed (`timeout -s KILL`,
    `kill -9 %1`); rake's run in sessions of their own, so its watchdog kills them."""
    t = token("47")
    work = tmp_path / "w"
    proc = start(work, f"actionset1:\n\ttouch ready; sleep {t}\n")
    assert wait_until(lambda: (work / "ready").exists() and processes_running(f"sleep {t}"), 15)
    proc.kill()
    proc.wait()
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 10), "the local action outlived rake-submit"


@pytest.mark.timeout(60)
def test_what_an_interrupted_local_action_left_is_killed_even_if_rake_submit_dies_in_the_grace(tmp_path):
    """Its shell ended of the interrupt, its `cmd &` did not: rake-submit means to kill it after
    the grace; killed meanwhile, its watchdog does it instead."""
    t = token("48")
    work = tmp_path / "w"
    proc = start(work, f"actionset1:\n\tsleep {t} & touch ready; wait\n")
    assert wait_until(lambda: (work / "ready").exists() and processes_running(f"sleep {t}"), 15)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.8)   # the shell has died of it; the grace (2 s) runs
    proc.kill()
    proc.wait()
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 10), "what it left outlived rake-submit"


@pytest.mark.timeout(60)
def test_an_interrupt_while_local_actions_are_starting_stops_every_one_of_them(tmp_path):
    t = token("43")
    proc = start(tmp_path / "w", "actionset1:\n\tkill -INT $PPID\n" + f"\tsleep {t}\n" * 60)
    status, err = stopped(proc, timeout=40)   # before: it waited for the sleeps started late
    assert status == 130, err
    assert wait_until(lambda: not processes_running(f"sleep {t}"), 5)


@pytest.mark.timeout(30)
def test_a_job_registered_after_the_interrupts_grace_is_killed_even_if_it_ignores_the_signal():
    """A shell that took the interrupt before it forked its command waits for that command."""
    registry = ProcessRegistry()
    registry.kill_all(signal.SIGINT, grace=0.05)
    proc = subprocess.Popen(["sh", "-c", "trap '' INT; sleep 30"], start_new_session=True)
    try:
        registry.add("late", proc.pid)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(30)
def test_a_job_registered_after_the_registry_was_closed_is_stopped_at_once():
    registry = ProcessRegistry()
    registry.kill_all()
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        registry.add("late", proc.pid)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert registry.remove("late")   # reported as killed on request
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(30)
def test_a_registry_interrupt_sends_the_signal_and_only_then_sigkill():
    registry = ProcessRegistry()
    polite = subprocess.Popen(["sleep", "30"], start_new_session=True)
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 30"], start_new_session=True)
    try:
        registry.add("polite", polite.pid)
        registry.add("stubborn", stubborn.pid)
        assert wait_until(lambda: ignores(stubborn.pid, signal.SIGTERM), 10)   # its trap is set
        for key, proc in (("polite", polite), ("stubborn", stubborn)):
            threading_wait_and_remove(registry, key, proc)
        registry.kill_all(signal.SIGTERM, grace=0.5)
        assert polite.wait(timeout=10) == -signal.SIGTERM
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in (polite, stubborn):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def ignores(pid: int, sig: int) -> bool:
    with open(f"/proc/{pid}/status") as fh:
        mask = next(int(line.split()[1], 16) for line in fh if line.startswith("SigIgn:"))
    return bool(mask & (1 << (sig - 1)))


def threading_wait_and_remove(registry: ProcessRegistry, key: str, proc: subprocess.Popen) -> None:
    """As a runner thread does: wait for the process, then forget it."""
    def wait() -> None:
        proc.wait()
        registry.remove(key)
    threading.Thread(target=wait, daemon=True).start()


@pytest.mark.timeout(60)
def test_local_actions_waiting_for_a_thread_when_interrupted_never_start_and_count_as_not_run(tmp_path):
    # An open-files limit of 300 gives the pool 16 threads for 30 local actions.
    t = token("47")
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\ttouch started.{i}; sleep {t}\n" for i in range(30)))
    few_files = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))  # noqa: E731
    proc = subprocess.Popen(command("rake-submit"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=few_files)
    assert wait_until(lambda: len(list(work.glob("started.*"))) == 16, 15)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    status, err = stopped(proc)
    assert status == 130, err
    assert len(list(work.glob("started.*"))) == 16
    text = err.decode()
    assert text.count("FAILED: [cancelled]") == 16 and "14 not run" in text, text[-300:]


@pytest.mark.parametrize("soft, threads", [(64, 8), (300, 16), (1024, 192)])
def test_local_action_threads_leave_descriptors_for_rake_submit_itself(soft, threads, monkeypatch):
    # Each running local action holds about four descriptors: 16 threads at a limit of 64
    # made 162 of 200 local actions fail with "Too many open files".
    from submitter.local import local_threads
    from submitter.options import RunOptions
    from submitter.rakefile import parse_rakefile
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, 4096))
    rakefile = parse_rakefile("actionset1:\n" + "\ttrue\n" * 400)
    assert local_threads(rakefile, RunOptions()) == threads


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_an_interrupted_run_says_it_was_interrupted_and_by_what_even_under_q(tmp_path, sig):
    """As make's `*** [...] Interrupt` and ninja's "build stopped: interrupted by user": the
    summary alone ("0 actions ok, 0 failed, 2 unfinished") did not say why, and -q left nothing."""
    t = token(str(int(sig) + 60))
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text(f"actionset1:\n\tremote-sleep {t}\n\tremote-touch started; sleep {t}\n")
    proc = subprocess.Popen(command("rake-submit") + ["-q"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: processes_running(f"sleep {t}"), 15)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert f"rake: interrupted by {signal.Signals(sig).name}: 2 remote actions cancelled\n".encode() in err, err
    assert not processes_running(f"sleep {t}")


SUBREAPER = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER: orphans come here, unreaped
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
end = time.monotonic() + 15
while not os.path.exists("ready") and time.monotonic() < end:
    time.sleep(0.05)
time.sleep(0.3)
began = time.monotonic()
proc.send_signal(signal.SIGTERM)
proc.wait(timeout=20)
print(proc.returncode, round(time.monotonic() - began, 2))
"""


@pytest.mark.timeout(60)
def test_an_interrupt_does_not_wait_the_grace_for_zombies_an_init_has_not_reaped(tmp_path):
    """SIGTERM ends `sh -c 'sleep N; ...'` before its sleep: the sleep, an orphan, stays a
    zombie in the group until its new parent reaps it, which a container's PID 1 that is no
    init never does. kill(-pgid, 0) still found the group: every interrupt took 2 s (GRACE)."""
    t = token("77")
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text(f"actionset1:\n\ttouch ready; sleep {t}; echo never\n")
    res = subprocess.run([sys.executable, "-c", SUBREAPER, *command("rake-submit")], cwd=work, capture_output=True,
                         timeout=40)
    status, took = res.stdout.split()
    assert int(status) == 143, res
    assert float(took) < 1.9, res.stdout   # the bug: the whole GRACE, 2 s
    assert not processes_running(f"sleep {t}")
