"""End to end on loopback: the example builds, and actions spread over the workers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.procs import command, rake_env, submit
from tests.cluster_helpers import cluster, write_rakefile


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-c"


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
