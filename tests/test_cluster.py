"""End to end on loopback: a real broker, real workers and rake-submit, as a user runs them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.procs import command, processes_running, rake_env, submit, wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-c"


def cluster(procs, tmp_path: Path, names=("w1", "w2"), slots: int = 2) -> str:
    return procs.cluster(tmp_path, names, slots)[1]


def write_rakefile(work: Path, text: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "Rakefile").write_text(text)
    return work


@pytest.mark.timeout(90)
def test_example_builds_on_a_broker_and_two_workers(procs, tmp_path):
    endpoint = cluster(procs, tmp_path)
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work)
    res = submit(["--broker", endpoint, "-v"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert b"cube(7) = 343\n" in res.stdout
    assert os.access(work / "shapes", os.X_OK)
    used = {w for w in (b"on w1:", b"on w2:") if w in res.stderr}
    assert used == {b"on w1:", b"on w2:"}, res.stderr


@pytest.mark.timeout(90)
def test_example_builds_on_the_embedded_cluster_without_any_broker(tmp_path):
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work)
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith(b"square(7) = 49\ncube(7) = 343\n")
    assert (work / "main.o").read_bytes()[:4] == b"\x7fELF"


@pytest.mark.timeout(90)
def test_six_one_second_actions_on_three_one_slot_workers_land_two_per_worker(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1", "w2", "w3"), slots=1)
    body = "".join("\tremote-sleep 1; echo ran-on-$RAKE_WORKER\n" for _ in range(6))
    work = write_rakefile(tmp_path / "w", "actionset1:\n" + body)
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    counts = Counter(line for line in res.stdout.decode().split())
    assert counts == {"ran-on-w1": 2, "ran-on-w2": 2, "ran-on-w3": 2}


@pytest.mark.timeout(90)
def test_fifty_concurrent_remote_actions_spread_over_all_workers(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1", "w2", "w3"), slots=2)
    body = "".join(f"\tremote-sleep 0.2; echo {i}-on-$RAKE_WORKER\n" for i in range(50))
    work = write_rakefile(tmp_path / "w", "actionset1:\n" + body)
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    counts = Counter(line.split("-on-")[1] for line in res.stdout.decode().split())
    assert sum(counts.values()) == 50
    assert set(counts) == {"w1", "w2", "w3"}
    assert min(counts.values()) >= 10, counts


@pytest.mark.timeout(60)
def test_unreachable_broker_exits_69_naming_what_it_tried(tmp_path):
    work = write_rakefile(tmp_path / "w", "PORT = 1\nHOSTS = localhost 127.0.0.1:2\nactionset1:\n\tremote-true\n")
    start = time.monotonic()
    res = submit(["--connect-timeout", "1"], cwd=work)
    assert res.returncode == 69, res.stderr
    assert time.monotonic() - start < 20
    assert b"tcp://localhost:1" in res.stderr and b"tcp://127.0.0.1:2" in res.stderr
    # Says how to start one, at the port the Rakefile names (not the default 6238).
    assert b"start one with 'rake-broker --bind tcp://127.0.0.1:1'" in res.stderr
    assert b"'rake-worker --broker tcp://localhost:1'" in res.stderr and b"6238" not in res.stderr
    assert b"Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_dead_first_host_is_skipped_with_one_warning(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    work = write_rakefile(tmp_path / "w", f"HOSTS = 127.0.0.1:1 localhost:{port}\nactionset1:\n\tremote-echo hi\n")
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"
    assert res.stderr.count(b"skipping broker tcp://127.0.0.1:1") == 1


@pytest.mark.timeout(60)
def test_a_silent_first_host_costs_the_connect_timeout_then_the_next_that_answered_is_used(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    with socket.socket() as silent:   # accepts connections and never speaks: a frozen broker
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hosts = f"127.0.0.1:{silent.getsockname()[1]} 127.0.0.1:{port}"
        work = write_rakefile(tmp_path / "w", f"HOSTS = {hosts}\nactionset1:\n\tremote-echo hi\n")
        res = submit(["--connect-timeout", "1"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n"
    assert res.stderr.count(b"skipping broker") == 1 and b"no answer in time" in res.stderr


@pytest.mark.timeout(60)
def test_two_host_entries_naming_one_broker_are_not_mistaken_for_silence(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    port = endpoint.rsplit(":", 1)[1]
    work = write_rakefile(tmp_path / "w", f"HOSTS = 127.0.0.1:{port} localhost:{port}\nactionset1:\n\tremote-echo hi\n")
    res = submit(["--connect-timeout", "2"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hi\n" and b"skipping broker" not in res.stderr


@pytest.mark.timeout(30)
def test_local_only_rakefile_never_contacts_a_broker(tmp_path):
    work = write_rakefile(tmp_path / "w", "HOSTS = 127.0.0.1:1\nactionset1:\n\techo local > made.txt\n")
    res = submit([], cwd=work, RAKE_BROKER="tcp://127.0.0.1:1")
    assert res.returncode == 0, res.stderr
    assert (work / "made.txt").read_text() == "local\n"


@pytest.mark.timeout(30)
def test_what_a_local_action_starts_in_the_background_runs_on_as_under_make(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\t(sleep 1; echo bg > bg.txt) > /dev/null 2>&1 &\n"
                          "actionset2:\n\tsleep 3; cat bg.txt\n")
    res = submit([], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"bg\n"


@pytest.mark.timeout(30)
def test_output_to_a_full_disk_is_one_error_line_and_exit_1_not_a_traceback(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\techo hello\n\tremote-echo there\n")
    with open("/dev/full", "wb") as full:
        res = subprocess.run(command("rake-submit"), cwd=work, env=rake_env(), stdout=full,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=20)
    assert res.returncode == 1, res.stderr
    assert b"Traceback" not in res.stderr
    assert res.stderr.count(b"rake: error: cannot write to stdout: No space left on device") == 1


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
def test_outputs_keep_subdirectories_and_executable_bits(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", (
        "actionset1:\n"
        "\tremote-mkdir -p out/bin && cp inc/tool.sh out/bin/tool && chmod 755 out/bin/tool && cat inc/defs.h\n"
        "\t\trequires inc/tool.sh inc/defs.h\n"
        "actionset2:\n\t./out/bin/tool\n"))
    (work / "inc").mkdir()
    (work / "inc" / "defs.h").write_text("#define X 1\n")
    (work / "inc" / "tool.sh").write_text("#!/bin/sh\necho tool-ran\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"#define X 1\ntool-ran\n"
    assert os.access(work / "out" / "bin" / "tool", os.X_OK)


@pytest.mark.timeout(60)
def test_remote_actions_make_files_with_the_submitters_umask_not_the_workers(procs, tmp_path):
    """A worker started with umask 000 made a umask-077 user's secret world-writable (and a
    mode masked only on the way back would flip between a first run and the next)."""
    old = os.umask(0)
    try:
        endpoint = cluster(procs, tmp_path, names=("w1",))
    finally:
        os.umask(old)
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo s3cret > key.txt && umask > umask.txt\n"
                                          "\tremote-echo pub > page.html && chmod 644 page.html\n")
    for run in (1, 2):
        res = subprocess.run(command("rake-submit") + ["--broker", endpoint], cwd=work, env=rake_env(),
                             capture_output=True, timeout=60, preexec_fn=lambda: os.umask(0o077))
        assert res.returncode == 0, res.stderr
        modes = [(work / n).stat().st_mode & 0o777 for n in ("key.txt", "page.html")]
        assert modes == [0o600, 0o644] and (work / "umask.txt").read_text() == "0077\n", (run, modes)


@pytest.mark.timeout(60)
def test_two_actions_writing_the_same_output_fail_naming_it(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo a > same.txt\n\tremote-echo b > same.txt\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 1
    assert b"'same.txt' is produced by two actions" in res.stderr
    assert res.stderr.splitlines()[-1].startswith(b"rake: 1 action ok, 1 failed"), res.stderr   # as the status says


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
def test_huge_output_on_both_streams_under_the_workers_cap_arrives_whole(procs, tmp_path):
    # The default cap is 16 MiB a stream (cut output: tests/test_limits.py).
    endpoint = procs.cluster(tmp_path, ("w1",), 2)[1]
    cmd = "remote-head -c 3000000 /dev/zero | tr '\\0' a; head -c 2000000 /dev/zero | tr '\\0' b >&2"
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\t{cmd}\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout == b"a" * 3_000_000
    assert res.stderr.count(b"b") == 2_000_000 and b"truncated" not in res.stderr


def sleep_token(prefix: str) -> str:
    """A `sleep` argument no other process on the machine uses, to find ours by."""
    return f"{prefix}.{os.getpid()}{int(time.time() * 1000) % 100000}"


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
    time.sleep(4)   # past the local action's own end: it must not have got there
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


@pytest.mark.timeout(30)
def test_the_answer_a_submitter_takes_is_the_first_its_broker_sent_not_what_followed():
    """While an earlier HOSTS entry stays silent, the broker that answered goes on sending
    (more of its table, deltas): those are the session's to read, not a new answer."""
    import threading

    import zmq
    from protocol import WorkerInfo, Workers, decode as decode_frames, encode as encode_msg
    from submitter.link import Candidate, find_broker

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    row = lambda name: WorkerInfo(id=name.encode().hex(), name=name, host="h", slots=1, queue=0, running=0, seq=1)  # noqa: E731

    def answer_then_more():
        peer, *hello = router.recv_multipart()
        router.send_multipart([peer, *encode_msg(Workers(full=True, workers=tuple(map(row, ("w1", "w2", "w3")))))])
        router.send_multipart([peer, *encode_msg(Workers(full=False, workers=(row("w2"),)))])
    server = threading.Thread(target=answer_then_more, daemon=True)
    server.start()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        candidates = [Candidate(f"tcp://127.0.0.1:{silent.getsockname()[1]}", "HOSTS, line 1"),
                      Candidate(f"tcp://127.0.0.1:{port}", "HOSTS, line 1")]
        sock, chosen = find_broker(ctx, candidates, b"S12345678", 1.0, "test", lambda s: None)
    try:
        assert chosen.answer.full and [w.name for w in chosen.answer.workers] == ["w1", "w2", "w3"]
        assert sock.poll(5000)
        delta, _ = decode_frames(sock.recv_multipart())   # still there for the session
        assert not delta.full and [w.name for w in delta.workers] == ["w2"]
    finally:
        sock.close(linger=0)
        router.close()
        server.join(5)


@pytest.mark.timeout(60)
def test_every_local_action_of_an_actionset_runs_at_once_without_j(tmp_path):
    """20 readers of FIFOs and the one writer that feeds them: all must run together."""
    work = tmp_path / "w"
    work.mkdir()
    for i in range(20):
        os.mkfifo(work / f"p{i}")
    readers = "".join(f"\tread x < p{i}; echo got-$x\n" for i in range(20))
    writer = "\tfor i in $(seq 0 19); do echo $i > p$i; done\n"
    (work / "Rakefile").write_text("actionset1:\n" + readers + writer)
    res = submit([], cwd=work, timeout=40)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == sorted(f"got-{i}".encode() for i in range(20))


@pytest.mark.timeout(60)
def test_a_failed_action_still_returns_its_outputs_small_and_big(tmp_path):
    # SPEC §3: every file it made comes back; the big one travels by digest, not inline.
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo partial > fail.log; "
                          "head -c 3000000 /dev/zero > big.bin; exit 3\nactionset2:\n\techo never\n")
    res = submit([], cwd=work)
    assert res.returncode == 1, res.stderr
    assert (work / "fail.log").read_text() == "partial\n"
    assert (work / "big.bin").stat().st_size == 3_000_000
    assert b"FAILED: [code=3]" in res.stderr and b"never" not in res.stdout


@pytest.mark.timeout(60)
def test_an_output_named_in_bytes_that_are_not_utf8_comes_back_through_a_real_broker(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo ran; printf x > \"$(printf 'bad\\377')\"; "
                          "head -c 2000000 /dev/zero > \"$(printf 'big\\351')\"\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"ran\n"   # once
    assert open(os.path.join(os.fsencode(work), b"bad\xff"), "rb").read() == b"x"
    assert os.path.getsize(os.path.join(os.fsencode(work), b"big\xe9")) == 2_000_000


@pytest.mark.timeout(60)
def test_an_action_with_one_refused_output_writes_none_of_them(tmp_path):
    work = tmp_path / "w"
    (work / "d").mkdir(parents=True)
    (work / "d" / "inside").write_text("keep")
    (work / "a.txt").write_text("old\n")
    (work / "Rakefile").write_text("actionset1:\n\tremote-echo new > a.txt; echo x > d; echo out\n")
    res = submit([], cwd=work)
    assert res.returncode == 1, res.stderr
    assert (work / "a.txt").read_text() == "old\n" and (work / "d" / "inside").read_text() == "keep"
    assert sorted(p.name for p in work.iterdir()) == ["Rakefile", "a.txt", "d"]   # no temporary left
    err = res.stderr.decode()
    assert "FAILED: [outputs refused]" in err and "cannot write 'd': a directory is in the way" in err
    assert err.splitlines()[-1].startswith("rake: 0 actions ok, 1 failed")


@pytest.mark.timeout(120)
def test_hundreds_of_local_actions_under_a_small_open_files_limit_all_run(tmp_path):
    """Each running local action holds descriptors: at a soft limit of 1024 they cannot all
    run at once, and none may be lost for it."""
    import resource
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\tsleep 1; echo {i}\n" for i in range(600)))
    proc = subprocess.run(command("rake-submit") + ["-q"], cwd=work, env=rake_env(), capture_output=True,
                          timeout=100, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(map(int, proc.stdout.split())) == list(range(600))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", ["printf x", "head -c 2000000 /dev/zero"])   # inline, and fetched later
def test_an_action_whose_outputs_are_refused_stops_its_actionset_like_any_failure(tmp_path, make):
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-{make} > out\n\ttouch second.txt\n")
    (work / "out").mkdir()   # a directory in the way: the output is refused
    res = submit(["-j1"], cwd=work)
    assert res.returncode == 1 and b"FAILED: [outputs refused]" in res.stderr, res.stderr
    assert not (work / "second.txt").exists()
