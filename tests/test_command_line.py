"""rake-submit's command line as make users type it (bare -j, -kj), and a Ctrl-C before
any program could take it."""

from __future__ import annotations

import math
import subprocess

import pytest

from tests.procs import command
from tests.test_config import programs_env, run, shown

INF = math.inf


@pytest.mark.parametrize("argv, jobs, rakefile", [
    (["-j"], INF, None), (["-j", "Other"], INF, "Other"), (["--jobs", "-k"], INF, None),
    (["-j", "3", "Other"], 3, "Other"), (["--", "-j"], None, "-j"), (["-kj", "Other"], INF, "Other"),
    (["-j", "4", "-j"], INF, None), (["-j", "-j", "4"], 4, None),   # the last one wins, as in make
])
def test_a_bare_j_means_no_limit_as_in_make_and_does_not_take_the_rakefile_as_its_number(argv, jobs, rakefile):
    from submitter.arguments import parse_args
    args = parse_args(argv)
    assert (args.jobs, args.rakefile) == (jobs, rakefile)


@pytest.mark.parametrize("value", ["2.5", "1e3", "0x10"])
def test_a_j_with_a_number_argparse_cannot_take_is_a_usage_error_not_a_rakefile_name(value, capsys):
    from submitter.arguments import parse_args
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["-j", value, "-n"])
    assert exit_info.value.code == 2 and f"invalid int value: '{value}'" in capsys.readouterr().err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program", ["rake-submit", "rake-worker", "rake-broker"])
def test_a_ctrl_c_while_the_config_file_is_read_ends_quietly_with_130(program, tmp_path):
    """A config file that is a FIFO nobody writes to holds the reading at a known place."""
    import os
    import signal
    import time
    (tmp_path / "xdg" / "rake").mkdir(parents=True)
    os.mkfifo(tmp_path / "xdg" / "rake" / "config.toml")
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttrue\n")
    proc = subprocess.Popen(command(program), env=programs_env(tmp_path), cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)   # started, and waiting in the open of the FIFO
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and b"Traceback" not in err, err


def test_a_bare_j_wins_over_a_config_files_jobs_as_any_flag_does(tmp_path):
    settings = shown(run("rake-submit", ["-j", "--show-config"], programs_env(tmp_path, user="jobs = 3\n"), tmp_path))
    assert settings["jobs"] == "no limit: all the cluster's slots (from -j)"
