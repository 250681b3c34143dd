"""End to end on loopback: the outputs of remote actions, written or refused."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.procs import command, rake_env, submit
from tests.cluster_helpers import cluster, write_rakefile


@pytest.mark.timeout(30)
def test_output_to_a_full_disk_is_one_error_line_and_exit_1_not_a_traceback(tmp_path):
    work = write_rakefile(tmp_path / "w", "actionset1:\n\techo hello\n\tremote-echo there\n")
    with open("/dev/full", "wb") as full:
        res = subprocess.run(command("rake-submit"), cwd=work, env=rake_env(), stdout=full,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=20)
    assert res.returncode == 1, res.stderr
    assert b"Traceback" not in res.stderr
    assert res.stderr.count(b"rake: error: cannot write to stdout: No space left on device") == 1


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
def test_huge_output_on_both_streams_under_the_workers_cap_arrives_whole(procs, tmp_path):
    # The default cap is 16 MiB a stream (cut output: tests/test_limits.py).
    endpoint = procs.cluster(tmp_path, ("w1",), 2)[1]
    cmd = "remote-head -c 3000000 /dev/zero | tr '\\0' a; head -c 2000000 /dev/zero | tr '\\0' b >&2"
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\t{cmd}\n")
    res = submit(["--broker", endpoint], cwd=work)
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout == b"a" * 3_000_000
    assert res.stderr.count(b"b") == 2_000_000 and b"truncated" not in res.stderr


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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", ["printf x", "head -c 2000000 /dev/zero"])   # inline, and fetched later
def test_an_action_whose_outputs_are_refused_stops_its_actionset_like_any_failure(tmp_path, make):
    work = write_rakefile(tmp_path / "w", f"actionset1:\n\tremote-{make} > out\n\ttouch second.txt\n")
    (work / "out").mkdir()   # a directory in the way: the output is refused
    res = submit(["-j1"], cwd=work)
    assert res.returncode == 1 and b"FAILED: [outputs refused]" in res.stderr, res.stderr
    assert not (work / "second.txt").exists()
