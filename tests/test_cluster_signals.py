"""End to end on loopback: rake-submit interrupted, hung up on, stopped and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.procs import command, processes_running, rake_env, wait_until
from tests.cluster_helpers import cluster, sleep_token, write_rakefile


def submit_running(procs, endpoint: str, work, *tokens: str):
    """rake-submit started in `work`, once every `sleep TOKEN` of its Rakefile runs."""
    proc = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: all(processes_running(f"sleep {t}") for t in tokens), 15)
    return proc


@pytest.mark.timeout(60)
def test_interrupted_submit_exits_130_and_kills_its_remote_action(procs, tmp_path):
    endpoint, token = cluster(procs, tmp_path, names=("w1",)), sleep_token("30")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {token}\n")
    proc = submit_running(procs, endpoint, work, token)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 130
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 10), "remote action survived"


@pytest.mark.timeout(60)
def test_a_hangup_cancels_remote_and_kills_local_actions_and_exits_129(procs, tmp_path):
    # A closed terminal or a dropped ssh session: nothing may go on writing into the tree.
    endpoint, remote, local = cluster(procs, tmp_path, names=("w1",)), sleep_token("31"), sleep_token("3")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {remote}\n"
                                          f"\tsleep {local}; echo late > late.txt\n")
    proc = submit_running(procs, endpoint, work, remote, local)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=15) == 129
    assert wait_until(lambda: not processes_running(f"sleep {remote}"), 10), "remote action survived"
    # The local action's shell names its token too: once none is left, nothing can still
    # write late.txt (had it not been killed, it ends on its own and writes it first).
    assert wait_until(lambda: not processes_running(local), 10), "local action survived"
    assert not (work / "late.txt").exists()


@pytest.mark.timeout(60)
def test_under_nohup_a_hangup_is_ignored_as_asked(procs, tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tsleep 2; echo done\n")
    proc = procs.start(["nohup"] + command("rake-submit"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == b"done\n"


@pytest.mark.timeout(60)
def test_started_with_ctrl_c_ignored_as_a_scripts_background_job_it_stays_ignored(procs, tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tsleep 2; echo done\n")
    proc = procs.start(command("rake-submit"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == b"done\n"


@pytest.mark.timeout(60)
def test_a_second_signal_while_the_first_is_acted_on_cuts_nothing_short(procs, tmp_path):
    """As `timeout` does: one signal to rake-submit, then one to its process group."""
    endpoint, token = cluster(procs, tmp_path, names=("w1",)), sleep_token("32")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {token}\n")
    proc = submit_running(procs, endpoint, work, token)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert err.decode().splitlines()[-1].startswith("rake: 0 actions ok"), err   # the summary
    assert b"Traceback" not in err
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 10), "remote action survived"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_submit_on_the_embedded_cluster_kills_its_action_and_removes_its_sandboxes(
        tmp_path, sig, status):
    # The embedded broker and worker run on rake-submit's own loop: the signal may land in
    # either, and the whole cluster must still come down cleanly.
    token = sleep_token("31")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {token}\n\tremote-true\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(command("rake-submit"), cwd=work, env=dict(os.environ, TMPDIR=str(temp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: processes_running(f"sleep {token}"), 15)
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 10), "embedded action survived"
    assert not [p.name for p in temp.iterdir() if p.name.startswith("rake-worker-")]


@pytest.mark.timeout(60)
def test_a_stopped_and_resumed_submit_on_the_embedded_cluster_runs_each_action_once(tmp_path):
    # Ctrl-Z and fg: the whole loop (submitter, broker, worker) was silent for many liveness
    # windows. That silence is nobody's: were the worker and the submitter dropped for it,
    # the running actions would be cancelled, and run again or (worse) never answered.
    runs = tmp_path / "runs"
    work = write_rakefile(tmp_path / "w", "actionset1:\n" + "".join(
        f"\tremote-echo {n} >> {runs}; sleep 6\n" for n in range(2)))   # still running after
    env = rake_env()
    proc = subprocess.Popen(command("rake-submit"), cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: runs.exists() and len(runs.read_text().split()) == 2, 15)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(5 * 3 * float(env["RAKE_HEARTBEAT"]))
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert sorted(runs.read_text().split()) == ["0", "1"], (runs.read_text(), err)


@pytest.mark.timeout(60)
def test_an_interrupt_while_the_broker_is_gone_says_which_remote_actions_may_run_on(procs, tmp_path):
    broker, endpoint = procs.broker()
    procs.worker(endpoint, "w1", tmp_path / "w1")
    token = sleep_token("32")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {token}\n")
    proc = submit_running(procs, endpoint, work, token)
    broker.kill()   # kill -9: our CANCEL has nobody to go to
    broker.wait(timeout=10)
    time.sleep(1.5)   # past the liveness window (0.6 s at the tests' heartbeat)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert b"1 remote action may run on until it is back, which then cancels them within" in err, err


@pytest.mark.timeout(60)
def test_ctrl_z_then_ctrl_c_before_fg_does_not_blame_the_embedded_broker(procs, tmp_path):
    """Stopped (Ctrl-Z), then interrupted before `fg` (bash's `kill %1` does SIGCONT, a
    `kill -INT %1` does not): the handler runs before the loop sees how long it was stopped,
    and the warning said the broker had been silent and the actions might run on, though the
    embedded one, stopped with us, cancelled them at once. (Over TCP rake-submit now waits up
    to 0.5 s for a live broker's queued messages before it warns: not tested, as under load
    that wait is a race.)"""
    token = sleep_token("34")
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-exec sleep {token}\n")
    proc = procs.start(command("rake-submit"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: processes_running(f"sleep {token}"), 15)
    proc.send_signal(signal.SIGTSTP)
    time.sleep(1.5)   # past the liveness window (0.6 s at the tests' heartbeat)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert b"may run on" not in err and b"silent" not in err, err
    assert wait_until(lambda: not processes_running(f"sleep {token}"), 10)
