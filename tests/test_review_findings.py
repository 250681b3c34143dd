"""Problems found in review, each shown with real processes. Every test is expected to fail
(xfail strict) until its bug is fixed; then it passes and the marker must be removed."""

from __future__ import annotations

import glob
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import zmq

from protocol import Heartbeat, Hello, Job, Load, Ready, Result, Want, decode, encode
from tests.procs import command, rake_env, submit, wait_until


def write_rakefile(work: Path, text: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "Rakefile").write_text(text)
    return work


def without_dac_override() -> list[str]:
    """A prefix that makes root obey file permissions (so a read-only directory is one)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


# ---- broker --------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_broker_survives_a_silent_submitter_with_a_long_routing_id(procs, tmp_path):
    broker, endpoint = procs.cluster(tmp_path, names=("w1",))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, b"S" + b"x" * 40)     # 82 hex chars: over the 64 of an id
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(encode(Hello(version="hostile")))
        assert not sock.poll(1000), "a peer whose id cannot be named on the wire was registered"
    finally:
        sock.close()               # now silent: the broker drops it after the liveness window
    time.sleep(2)
    assert broker.poll() is None, "the broker died"
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-echo still-routing\n")
    res = submit(["--broker", endpoint], cwd=work, timeout=30)
    assert (res.returncode, res.stdout) == (0, b"still-routing\n"), res.stderr


# ---- worker --------------------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_worker_survives_more_by_digest_inputs_than_it_has_file_descriptors(procs, tmp_path):
    log = tmp_path / "broker.log"
    broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"],
                         stdout=subprocess.PIPE, stderr=log.open("wb"))
    endpoint = broker.stdout.readline().decode().strip()

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    (tmp_path / "wd").mkdir()
    worker = procs.start(command("rake-worker") + ["--broker", endpoint, "--name", "w1", "--slots", "2",
                                                   "--workdir", str(tmp_path / "wd")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=low_fd_limit)
    assert wait_until(lambda: " joined" in log.read_text(), 15)
    work = tmp_path / "w"
    (work / "src").mkdir(parents=True)
    names = []
    for i in range(8):                       # 8 MiB: uses up the JOB's inline budget ...
        (work / "src" / f"big{i}.bin").write_bytes(os.urandom(1 << 20))
        names.append(f"src/big{i}.bin")
    for i in range(300):                     # ... so these 300 go by digest: 300 fetches at once
        (work / "src" / f"s{i:04d}.txt").write_text(f"{i}\n")
        names.append(f"src/s{i:04d}.txt")
    write_rakefile(work, "actionset1:\n\tremote-ls src | wc -l\n" + "".join(f"\t\trequires {n}\n" for n in names))
    res = submit(["--broker", endpoint, "--worker-wait", "3"], cwd=work, timeout=60)
    assert worker.poll() is None, "the worker died"
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == b"308"


@pytest.mark.timeout(90)
def test_five_thousand_tiny_inputs_do_not_make_the_worker_miss_its_heartbeats(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"))
    work = tmp_path / "w"
    (work / "src").mkdir(parents=True)
    names = []
    for i in range(5000):
        (work / "src" / f"f{i:05d}.txt").write_text(f"{i}\n")
        names.append(f"src/f{i:05d}.txt")
    ledger = tmp_path / "ledger"
    write_rakefile(work, f"actionset1:\n\tremote-echo run >> {ledger}; cat src/* | wc -l\n"
                   + "".join(f"\t\trequires {n}\n" for n in names))
    res = submit(["--broker", endpoint], cwd=work, timeout=60)
    assert res.returncode == 0, res.stderr
    assert b"was lost" not in res.stderr, res.stderr
    assert ledger.read_text() == "run\n", "the action ran more than once"


@pytest.mark.timeout(90)
def test_worker_killed_while_its_big_output_is_fetched_is_rerun_elsewhere(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1", "w2"))
    workers = {p.args[p.args.index("--name") + 1]: p for p in procs.procs if "--name" in p.args}
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-head -c 100M /dev/zero > big.bin; echo made\n")
    sub = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    digest = hashlib.sha256(b"\0" * (100 << 20)).hexdigest()
    holder = None
    deadline = time.monotonic() + 30
    while holder is None and sub.poll() is None and time.monotonic() < deadline:
        if glob.glob(str(work / ".rake-incoming-*" / "part-*")):     # the submitter is fetching
            for name, proc in workers.items():
                if glob.glob(str(tmp_path / f"scratch-{name}" / "cache" / "*" / digest)):
                    proc.send_signal(signal.SIGSTOP)
                    proc.send_signal(signal.SIGKILL)
                    holder = name
        time.sleep(0.002)
    assert holder is not None, "did not catch the fetch in progress"
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    assert out == b"made\n"
    assert (work / "big.bin").stat().st_size == 100 << 20


# ---- submitter -----------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_submit_with_stdout_closed_gives_no_traceback(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\techo hi > made.txt\n")
    res = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *command("rake-submit")], cwd=work,
                         env=rake_env(), stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=20)
    assert b"Traceback" not in res.stderr, res.stderr.decode()
    assert (work / "made.txt").exists()


@pytest.mark.timeout(30)
def test_submit_into_a_closed_pipe_gives_no_traceback(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tyes hello | head -c 200000\n"
                                          "actionset2:\n\ttouch second.txt\n")
    r, w = os.pipe()
    os.close(r)                     # like `| head -c 10` once head has exited
    try:
        proc = subprocess.run(command("rake-submit"), cwd=work, env=rake_env(), stdout=w,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=20)
    finally:
        os.close(w)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert len(proc.stderr.splitlines()) <= 2, proc.stderr.decode()


@pytest.mark.timeout(60)
def test_big_output_into_a_read_only_directory_is_a_one_line_error(procs, tmp_path):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-head -c 3M /dev/zero > big.bin; echo made\n")
    work.chmod(0o555)
    try:
        res = subprocess.run(without_dac_override() + command("rake-submit") + ["--broker", endpoint], cwd=work,
                             env=rake_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, timeout=40)
    finally:
        work.chmod(0o755)
    assert b"Traceback" not in res.stderr, res.stderr.decode()
    assert res.returncode == 1
    assert b"big.bin" in res.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["long-command", "many-long-requires"])
def test_a_job_too_big_to_encode_is_a_one_line_error(procs, tmp_path, case):
    _, endpoint = procs.cluster(tmp_path, names=("w1",))
    work = tmp_path / "w"
    if case == "long-command":
        write_rakefile(work, "actionset1:\n\tremote-echo " + "a" * 140_000 + " | wc -c\n")
    else:   # 5000 paths of 3.8 KB: a JOB header over the 16 MiB limit
        deep = work / "/".join(["d" * 250] * 15)
        deep.mkdir(parents=True)
        names = [f"{deep.relative_to(work)}/{i:05d}.txt" for i in range(5000)]
        for n in names:
            (work / n).write_text("x\n")
        write_rakefile(work, "actionset1:\n\tremote-true\n" + "".join(f"\t\trequires {n}\n" for n in names))
    res = submit(["--broker", endpoint], cwd=work, timeout=40)
    assert b"Traceback" not in res.stderr, res.stderr.decode()[-800:]
    assert res.returncode in (1, 2)
    assert len(res.stderr.decode().splitlines()) <= 3, res.stderr.decode()[-800:]


@pytest.mark.timeout(60)
def test_submitter_survives_a_want_for_an_input_that_was_removed(procs, tmp_path):
    env = rake_env(RAKE_HEARTBEAT="1")
    broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    endpoint = broker.stdout.readline().decode().strip()
    ctx = zmq.Context.instance()
    fake = ctx.socket(zmq.DEALER)                  # a worker speaking the protocol by hand
    fake.setsockopt(zmq.ROUTING_ID, b"W" + os.urandom(8))
    fake.setsockopt(zmq.LINGER, 0)
    fake.connect(endpoint)
    load = Load(queue=0, running=0, slots=1, seq=1)
    fake.send_multipart(encode(Ready(name="fake", host="here", version="t", load=load)))

    def next_of(kind, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fake.send_multipart(encode(Heartbeat(load=load)))
            if fake.poll(200):
                msg, blobs = decode(fake.recv_multipart())
                if isinstance(msg, kind):
                    return msg
        raise AssertionError(f"no {kind.__name__}")

    try:
        work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-md5sum in.bin\n\t\trequires in.bin\n")
        data = os.urandom(2 << 20)                 # over 1 MiB: sent by digest, fetched with WANT
        (work / "in.bin").write_bytes(data)
        sub = procs.start(command("rake-submit") + ["--broker", endpoint], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        job = next_of(Job)
        (work / "in.bin").unlink()                 # e.g. a local action of the same actionset rewrote it
        fake.send_multipart(encode(Want(to=job.client, digest=hashlib.sha256(data).hexdigest(),
                                        upto=8 << 20, restart=True)))
        for _ in range(5):                         # give it time to serve (or crash), keeping alive
            fake.send_multipart(encode(Heartbeat(load=load)))
            time.sleep(0.2)
        fake.send_multipart(encode(Result(job=job.job, client=job.client, status="exited", code=0,
                                          stdout=0, stderr=1, load=load), [b"ok\n", b""]))
        out, err = sub.communicate(timeout=30)
    finally:
        fake.close()
    assert b"Traceback" not in err, err.decode()
    assert sub.returncode == 0 and out == b"ok\n"
