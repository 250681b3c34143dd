"""Required inputs that change here while their action runs, or are swapped
for something else between the check at the actionset's start and the JOB."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.procs import command, rake_env, submit, wait_until
from tests.cluster_helpers import cluster, write_rakefile


@pytest.mark.timeout(60)
def test_an_edit_made_to_a_required_file_while_its_action_rewrites_it_is_not_overwritten(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    started = tmp_path / "started"
    work = write_rakefile(tmp_path / "w", (
        "actionset1:\n"
        f"\tremote-touch {started} && sleep 2 && sed -i 's/  */ /g' src.c\n"
        "\t\trequires src.c\n"))
    (work / "src.c").write_text("int  x;\n")
    proc = subprocess.Popen(command("rake-submit") + ["--broker", endpoint], cwd=work, env=rake_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(started.exists, timeout=20)
        (work / "src.c").write_text("int  x;\nint edited_meanwhile;\n")   # the user's editor
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (work / "src.c").read_text() == "int  x;\nint edited_meanwhile;\n", err
    assert proc.returncode == 1, err
    assert b"'src.c' changed here while the action ran" in err, err
    assert not [n for n in os.listdir(work) if n.startswith(".rake")]


@pytest.mark.timeout(60)
def test_an_unedited_required_file_the_action_rewrites_still_comes_back(procs, tmp_path):
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-sed -i 's/  */ /g' src.c\n\t\trequires src.c\n")
    (work / "src.c").write_text("int  x;\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert (work / "src.c").read_text() == "int x;\n"


@pytest.mark.timeout(60)
def test_a_required_file_swapped_for_a_fifo_after_the_check_fails_the_action_not_hangs(procs, tmp_path):
    """The check at the actionset's start saw a regular file; a local action of the same
    actionset (run first with -j1) made it a FIFO: hashing it blocked rake-submit for ever."""
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", (
        "actionset1:\n\trm -f y && mkfifo y\n\tremote-cat y\n\t\trequires y\n"))
    (work / "y").write_text("a\n")
    t0 = time.monotonic()
    res = submit(["--broker", endpoint, "-j1"], cwd=work, timeout=30)
    assert res.returncode == 1, res.stderr
    assert b"'y'" in res.stderr and b"not a regular file" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 20


@pytest.mark.timeout(60)
def test_a_sparse_output_stays_sparse_here(procs, tmp_path):
    """`truncate -s 64M` takes no disk on the worker; it came back as 64 MiB of written zeros
    (a `truncate -s 100G` disk image would fill the submitter's disk)."""
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-truncate -s 64M img && printf x >> img "
                                          "&& truncate -s 80M tail\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    img, tail = (work / "img").stat(), (work / "tail").stat()
    assert (img.st_size, tail.st_size) == (64 * 2**20 + 1, 80 * 2**20)
    assert img.st_blocks * 512 < 2**20 and tail.st_blocks * 512 < 2**20, (img.st_blocks, tail.st_blocks)
    with open(work / "img", "rb") as fh:
        fh.seek(64 * 2**20 - 3)
        assert fh.read() == b"\0\0\0x"


@pytest.mark.timeout(60)
def test_two_outputs_with_the_same_sparse_contents_both_stay_sparse_here(procs, tmp_path):
    """One download serves both; the second was a sendfile copy of it, every hole written."""
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", "actionset1:\n\tremote-truncate -s 64M a.img && printf x >> a.img "
                                          "&& cp --sparse=always a.img b.img\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    for name in ("a.img", "b.img"):
        st = (work / name).stat()
        assert st.st_size == 64 * 2**20 + 1 and st.st_blocks * 512 < 2**20, (name, st.st_blocks)
    assert (work / "a.img").read_bytes() == (work / "b.img").read_bytes()


@pytest.mark.timeout(60)
def test_an_output_made_after_another_is_not_older_than_it_here(procs, tmp_path):
    """The action writes z.h, then a.o from it: locally a.o is the newer, so make and ninja
    take it as up to date. Outputs were written here in name order (a.o first, then two
    thousand others, f1..f2000, z.h last), so z.h came out newer and a.o was rebuilt on every run."""
    endpoint = cluster(procs, tmp_path, names=("w1",))
    work = write_rakefile(tmp_path / "w", (
        "actionset1:\n\tremote-echo X > z.h && seq 2000 | sed s/^/f/ | xargs touch "
        "&& sleep 0.1 && cat z.h > a.o\n"))
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr
    assert (work / "f2000").exists()
    header, obj = (work / "z.h").stat().st_mtime_ns, (work / "a.o").stat().st_mtime_ns
    assert obj >= header, (obj - header) / 1e6


@pytest.mark.timeout(90)
def test_an_edit_made_while_the_broker_restarts_is_not_overwritten_by_the_resent_job(procs, tmp_path):
    """After a broker restart the submitter sends its running job again (same id) to the
    worker that holds it, with the file as it is now; the worker ignores the resend and
    ends the job it runs, made from the old contents. Compared with the last send, the
    edit looked like no change, and was overwritten."""
    from tests.reliability_helpers import RestartableCluster
    cluster = RestartableCluster(procs, tmp_path, "0.5")
    started = tmp_path / "started"
    work = write_rakefile(tmp_path / "w", (
        "actionset1:\n"
        f"\tremote-touch {started} && sleep 3 && tr a-z A-Z < src.c > t && mv t src.c\n"
        "\t\trequires src.c\n"))
    (work / "src.c").write_text("int x;\n")
    sub = cluster.submit(work)
    assert wait_until(started.exists, timeout=20)
    cluster.restart_broker(0.3, lambda: (work / "src.c").write_text("int x;\nint edited_meanwhile;\n"))   # the user's editor
    _, err = sub.communicate(timeout=60)
    assert (work / "src.c").read_text() == "int x;\nint edited_meanwhile;\n", err
    assert sub.returncode == 1, err
    assert b"'src.c' changed here while the action ran" in err, err
