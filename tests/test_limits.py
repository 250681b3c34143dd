"""Issue 6, bounded jobs: hostile actions on a real worker end as reported failures, and the
same worker keeps heartbeating and runs the next action fine.

Every attack runs under small limits given as worker flags, in the worker's PID namespace
(as root; otherwise through its spawner without one, as for any unprivileged user), with a
wall-time limit; the fork bomb only after the limits are seen to hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.procs import Processes, command, processes_with_env, submit, wait_until

AS_ROOT = os.geteuid() == 0
NOBODY = "65534"
MAX_PROCS = 24
LIMITS = ["--max-time", "3", "--max-output", "64", "--max-disk", "16", "--max-memory", "256",
          "--nice", "7", *(["--user", NOBODY, "--max-procs", str(MAX_PROCS)] if AS_ROOT else [])]
LIMITS_SEEN = "id -u; awk '/Max processes/ {print $3}' /proc/self/limits"
pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")


# Root insists on the namespace, so a broken one fails here rather than falling back.
ISOLATE = "pidns" if os.geteuid() == 0 else "auto"


class Bounded:
    """A broker and one worker `wb` with small limits, shared by this module's tests."""

    def __init__(self) -> None:
        self.procs = Processes()
        # The action user must be able to pass through every parent of its sandbox.
        self.root = Path(tempfile.mkdtemp(prefix="rake-limits-"))
        self.root.chmod(0o711)
        self.log = self.root / "broker.log"
        broker = self.procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"],
                                  stdout=subprocess.PIPE, stderr=self.log.open("wb"))
        self.endpoint = broker.stdout.readline().decode().strip()
        scratch = self.root / "scratch"
        scratch.mkdir(mode=0o711)
        self.worker = self.procs.worker(self.endpoint, "wb", scratch, 2, "--isolate", ISOLATE, *LIMITS)
        if not wait_until(lambda: " joined" in self.log.read_text(), 15):
            self.close()
            raise RuntimeError(f"the bounded worker did not join: {self.log.read_text()}")

    def run(self, line: str, *extra: str) -> subprocess.CompletedProcess:
        work = self.last_work = Path(tempfile.mkdtemp(dir=self.root))
        (work / "Rakefile").write_text(f"actionset1:\n\tremote-{line}\n")
        return submit(["--broker", self.endpoint, "-v", *extra], cwd=work)

    def still_serves(self) -> None:
        """The worker is up, still in the broker's table, and runs a normal action fine."""
        res = self.run("echo still-fine")
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"still-fine\n"
        assert b"done on wb" in res.stderr
        assert self.worker.poll() is None
        log = self.log.read_text()
        assert log.count(" joined") == 1 and " left:" not in log, log

    def close(self) -> None:
        self.procs.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def bounded():
    cluster = Bounded()
    try:
        yield cluster
    finally:
        cluster.close()


def failed_line(res: subprocess.CompletedProcess) -> str:
    lines = [x for x in res.stderr.decode(errors="replace").splitlines() if x.startswith("FAILED:")]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    return lines[0]


@pytest.mark.timeout(60)
def test_unbounded_output_is_cut_marked_and_stopped(bounded):
    res = bounded.run("yes")
    line = failed_line(res)
    assert "killed: " in line and ("disk limit" in line or "file size limit" in line), line
    assert res.stdout == b"y\n" * (64 * 1024 // 2)
    assert b"[stdout truncated at 65536 bytes by wb]" in res.stderr
    bounded.still_serves()


@pytest.mark.timeout(60)
def test_output_under_the_cap_is_whole_and_not_marked(bounded):
    res = bounded.run("head -c 65536 /dev/zero")
    assert res.returncode == 0, res.stderr
    assert res.stdout == bytes(65536) and b"truncated" not in res.stderr


@pytest.mark.timeout(60)
def test_sleep_infinity_is_killed_at_the_workers_time_limit(bounded):
    start = time.monotonic()
    res = bounded.run("sleep infinity")
    line = failed_line(res)
    assert "[timeout]" in line and "killed: time limit of 3 s (worker --max-time)" in line, line
    assert time.monotonic() - start < 30
    bounded.still_serves()


@pytest.mark.timeout(60)
def test_the_submitters_shorter_timeout_still_wins(bounded):
    res = bounded.run("sleep infinity", "--timeout", "1")
    line = failed_line(res)
    assert "[timeout after 1s]" in line and "worker --max-time" not in line, line


@pytest.mark.timeout(60)
def test_the_workers_shorter_time_limit_is_named_rather_than_the_submitters_timeout(bounded):
    res = bounded.run("sleep infinity", "--timeout", "20")
    line = failed_line(res)
    assert "[timeout]" in line and "after 20s" not in line and "worker --max-time" in line, line


@pytest.mark.timeout(60)
def test_a_disk_filling_dd_is_stopped_at_the_file_size_limit(bounded):
    res = bounded.run("dd if=/dev/zero of=big bs=1M count=100000")
    line = failed_line(res)
    assert "killed: file size limit of 16 MiB" in line, line
    assert not (bounded.last_work / "big").exists()   # what a limit cut off does not come back
    bounded.still_serves()


@pytest.mark.timeout(60)
def test_many_small_files_are_stopped_at_the_sandbox_disk_limit(bounded):
    res = bounded.run("for i in $(seq 100); do head -c 1048576 /dev/zero > f$i; sleep 0.02; done")
    line = failed_line(res)
    assert "[signal=9]" in line and "killed: disk limit" in line, line
    assert sorted(p.name for p in bounded.last_work.iterdir()) == ["Rakefile"]
    bounded.still_serves()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hog", [
    "head -c 2G /dev/zero | tail",                        # tail keeps the whole "line"
    "dd if=/dev/zero of=/dev/null bs=1G count=1",          # one 1 GiB buffer
], ids=["tail", "dd-buffer"])
def test_a_memory_hog_fails_at_the_memory_limit(bounded, hog):
    res = bounded.run(hog)
    line = failed_line(res)
    assert "[code=1]" in line, line
    assert b"memory exhausted" in res.stderr
    bounded.still_serves()


@pytest.mark.timeout(60)
def test_actions_run_at_lower_priority(bounded):
    res = bounded.run("cut -d' ' -f19 /proc/self/stat")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) >= 7


@pytest.mark.timeout(90)
@pytest.mark.skipif(not AS_ROOT, reason="the process limit needs a dedicated action user (--user), "
                    "which needs the worker to run as root")
def test_a_fork_bomb_is_held_to_the_process_limit(bounded):
    # Only with the limits seen in force: an unbounded bomb would hurt the machine.
    res = bounded.run(LIMITS_SEEN)
    assert res.returncode == 0 and res.stdout.split() == [NOBODY.encode(), str(MAX_PROCS).encode()], res
    work = Path(tempfile.mkdtemp(dir=bounded.root))
    (work / "Rakefile").write_text("actionset1:\n\tremote-bomb(){ bomb|bomb& }; bomb; sleep 1\n")
    sub = bounded.procs.start(command("rake-submit") + ["--broker", bounded.endpoint], cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counts = [0]
    while sub.poll() is None and len(counts) < 2000:
        counts.append(len(processes_with_env("RAKE_WORKER=wb")))
    _, err = sub.communicate(timeout=30)
    assert b"Cannot fork" in err, err[-500:]   # it ran into the limit...
    assert max(counts) <= MAX_PROCS, f"more processes than the limit: {max(counts)}"   # ...which held
    assert wait_until(lambda: not processes_with_env("RAKE_WORKER=wb"), 5), "the bomb outlived its action"
    bounded.still_serves()


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("bash") is None, reason="the classic fork bomb needs bash")
@pytest.mark.skipif(not AS_ROOT, reason="needs root for --user (see the fork bomb test above)")
def test_the_classic_fork_bomb_is_killed_with_a_warning_and_leaves_nothing_running(bounded):
    res = bounded.run(LIMITS_SEEN)
    assert res.stdout.split() == [NOBODY.encode(), str(MAX_PROCS).encode()], res
    res = bounded.run("bash -c ':(){ :|:& };:'")   # its shell ends at once, the bomb goes on
    assert b"warning: line 2: killed: it left processes running" in res.stderr, res.stderr   # its shell exited 0
    assert wait_until(lambda: not processes_with_env("RAKE_WORKER=wb"), 5), "the bomb outlived its action"
    bounded.still_serves()


@pytest.mark.timeout(60)
def test_an_action_reads_its_private_inputs_and_only_its_outputs_come_back(bounded):
    work = Path(tempfile.mkdtemp(dir=bounded.root))
    (work / "in.txt").write_text("secret\n")
    (work / "in.txt").chmod(0o600)
    inode = (work / "in.txt").stat().st_ino
    (work / "Rakefile").write_text("actionset1:\n\tremote-cat in.txt > out.txt; id -u\n\t\trequires in.txt\n")
    res = submit(["--broker", bounded.endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (NOBODY.encode() if AS_ROOT else str(os.getuid()).encode()) + b"\n"
    assert (work / "out.txt").read_text() == "secret\n"
    assert (work / "in.txt").stat().st_ino == inode, "the unchanged input came back as an output"


@pytest.mark.timeout(30)
@pytest.mark.skipif(not AS_ROOT, reason="needs root for --user")
def test_a_given_workdir_that_others_may_read_is_warned_about_with_user(tmp_path):
    workdir = tmp_path / "wd"
    workdir.mkdir(mode=0o755)
    proc = subprocess.Popen(command("rake-worker") + ["--broker", "tcp://127.0.0.1:9", "--workdir", str(workdir),
                                                      "--user", NOBODY], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    assert "readable by others: actions run as --user 65534 can list its job directories (chmod 711 it)" in line
    assert workdir.stat().st_mode & 0o777 == 0o755   # a given one is not ours to change
