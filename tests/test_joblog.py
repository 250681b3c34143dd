"""--joblog in GNU parallel's columns, and -v naming the worker of each action."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from submitter.joblog import HEADER, JobLog, exit_columns
from tests.procs import command, rake_env, submit, wait_until


def read_joblog(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(HEADER)
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 9 for r in rows), rows
    return [dict(zip(HEADER, r)) for r in rows]


@pytest.mark.timeout(60)
def test_joblog_has_a_row_per_action_with_host_times_bytes_and_exit(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "in.txt").write_bytes(b"x" * 1000)
    (work / "Rakefile").write_text(
        "actionset1:\n"
        "\techo local\n"
        "\tremote-cp in.txt out.txt; printf 12345 >> out.txt\n"
        "\t\trequires in.txt\n"
        "\tremote-exit 3\n"
        "\tremote-kill -9 $$\n")
    before = time.time()
    res = submit(["-k", "-v", "--joblog", "jobs.tsv"], cwd=work)
    assert res.returncode == 1, res.stderr
    rows = {r["Seq"]: r for r in read_joblog(work / "jobs.tsv")}
    assert sorted(rows) == ["1", "2", "3", "4"]
    assert rows["1"]["Host"] == ":" and rows["1"]["Command"] == "echo local"
    assert {rows[s]["Host"] for s in "234"} == {"embedded"}
    assert (rows["2"]["Send"], rows["2"]["Receive"]) == ("1000", "1005")
    assert (rows["3"]["Exitval"], rows["3"]["Signal"]) == ("3", "0")
    assert (rows["4"]["Exitval"], rows["4"]["Signal"]) == ("-1", "9")
    for row in rows.values():
        start, runtime = row["Starttime"], row["JobRuntime"]
        assert len(start.split(".")[1]) == 3 and len(runtime.split(".")[1]) == 3
        assert before - 1 <= float(start) <= time.time() and float(runtime) >= 0
    assert b"sent to embedded: exit 3 (line 5)" in res.stderr   # -v names the worker


@pytest.mark.timeout(60)
def test_joblog_lines_are_written_as_actions_end(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\techo quick\nactionset2:\n\tsleep 30\n")
    proc = subprocess.Popen(command("rake-submit") + ["--joblog", "jobs.tsv"], cwd=work, env=rake_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = work / "jobs.tsv"
        assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 2, 20)
        assert proc.poll() is None              # the run is still going: the line was flushed
        assert read_joblog(log)[0]["Command"] == "echo quick"
    finally:
        proc.kill()
        proc.wait()


def test_joblog_keeps_nine_columns_whatever_the_command(tmp_path):
    log = JobLog(str(tmp_path / "j.tsv"))
    log.record(7, "w1", 1700000000.12345, 0.5, 10, 20, *exit_columns("timeout", 0), "printf 'a\tb'\r\n")
    log.close()
    row = read_joblog(tmp_path / "j.tsv")[0]
    assert row == {"Seq": "7", "Host": "w1", "Starttime": "1700000000.123", "JobRuntime": "0.500",
                   "Send": "10", "Receive": "20", "Exitval": "-1", "Signal": "0", "Command": "printf 'a b'  "}


def test_an_unwritable_joblog_is_a_usage_error(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    res = submit(["--joblog", str(tmp_path / "no-such-dir" / "j.tsv")], cwd=work)
    assert res.returncode == 2
    assert b"cannot write the job log" in res.stderr and not (work / "ran").exists()


def test_a_usage_error_leaves_an_existing_joblog_as_it_was(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    (work / "j.tsv").write_text("earlier rows\n")
    res = submit(["--joblog", "j.tsv", "--heartbeat", "0"], cwd=work)
    assert res.returncode == 2 and b"--heartbeat must be" in res.stderr
    assert (work / "j.tsv").read_text() == "earlier rows\n" and not (work / "ran").exists()


@pytest.mark.timeout(60)
def test_a_joblog_that_fills_up_mid_run_is_one_error_the_run_goes_on_and_exits_1(tmp_path):
    import resource
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n" + "".join(f"\ttrue {'x' * 200} {i} && touch ran.{i}\n"
                                                              for i in range(8)))
    small_files = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # noqa: E731 (EFBIG past 1 KiB)
    res = subprocess.run(command("rake-submit") + ["--joblog", str(tmp_path / "j.tsv")], cwd=work, env=rake_env(),
                         capture_output=True, timeout=60, preexec_fn=small_files)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert err.count(f"rake: error: cannot write the job log {tmp_path / 'j.tsv'}: File too large") == 1, err
    assert "Traceback" not in err and "8 actions ok" in err and len(list(work.glob("ran.*"))) == 8


@pytest.mark.timeout(30)
def test_a_joblog_whose_header_cannot_be_written_is_a_usage_error_before_anything_runs(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    res = submit(["--joblog", "/dev/full"], cwd=work)
    assert res.returncode == 2 and not (work / "ran").exists()
    assert b"cannot write the job log /dev/full: No space left on device" in res.stderr
