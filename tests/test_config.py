"""Configuration files: precedence, --show-config, and clear errors for bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rake_common.config import ConfigError, parse_config
from tests.procs import command, free_port, rake_env


def programs_env(tmp_path: Path, system: str | None = None, user: str | None = None, **extra: str) -> dict:
    """An environment whose system and user config files hold `system` and `user`."""
    etc, xdg = tmp_path / "etc.toml", tmp_path / "xdg"
    if system is not None:
        etc.write_text(system)
    if user is not None:
        (xdg / "rake").mkdir(parents=True)
        (xdg / "rake" / "config.toml").write_text(user)
    return rake_env(RAKE_SYSTEM_CONFIG=str(etc), XDG_CONFIG_HOME=str(xdg), **extra)


def run(program: str, args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(program) + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def shown(res: subprocess.CompletedProcess) -> dict[str, str]:
    assert res.returncode == 0, res.stderr
    return {line.split(" = ")[0]: line.split(" = ", 1)[1] for line in res.stdout.splitlines()
            if " = " in line}


def test_broker_comes_from_flag_then_env_then_user_file_then_system_file(tmp_path):
    env = programs_env(tmp_path, system='broker = "tcp://sys:1"\njobs = 4\n', user='broker = "tcp://user:2"\n')
    user_file = str(tmp_path / "xdg" / "rake" / "config.toml")
    settings = shown(run("rake-submit", ["--show-config"], env, tmp_path))
    assert settings["broker"] == f"tcp://user:2 (from {user_file})"
    assert settings["jobs"] == f"4 (from {tmp_path / 'etc.toml'})"     # files merge key by key
    assert settings["connect_timeout"] == "3.0 (default)"
    env["RAKE_BROKER"] = "tcp://env:3"
    assert shown(run("rake-submit", ["--show-config"], env, tmp_path))["broker"] == "tcp://env:3 (from RAKE_BROKER)"
    flag = shown(run("rake-submit", ["--show-config", "--broker", "tcp://flag:4", "-j", "2"], env, tmp_path))
    assert flag["broker"] == "tcp://flag:4 (from --broker)" and flag["jobs"] == "2 (from -j)"


def test_without_any_broker_setting_show_config_names_hosts_or_the_embedded_cluster(tmp_path):
    env = programs_env(tmp_path)
    assert shown(run("rake-submit", ["--show-config"], env, tmp_path))["broker"] == "embedded local cluster (default)"
    (tmp_path / "Rakefile").write_text("HOSTS = buildhost\nactionset1:\n\tremote-true\n")
    assert shown(run("rake-submit", ["--show-config"], env, tmp_path))["broker"] == \
        "tcp://buildhost:6238 (from the Rakefile's HOSTS, line 1)"


def test_show_config_names_the_heartbeat_of_every_program(tmp_path):
    env = programs_env(tmp_path, RAKE_HEARTBEAT="0.5")
    for program in ("rake-submit", "rake-worker", "rake-broker"):
        settings = shown(run(program, ["--show-config"], env, tmp_path))
        assert settings["heartbeat"] == "0.5 (from RAKE_HEARTBEAT)", program
        assert settings["liveness"] == "3 (default)", program
    assert shown(run("rake-broker", ["--show-config", "--heartbeat", "2"], env, tmp_path))["heartbeat"] == \
        "2.0 (from --heartbeat)"


def test_worker_show_config_names_its_limits_and_the_directories_it_would_use(tmp_path):
    env = programs_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    settings = shown(run("rake-worker", ["--show-config", "--name", "w1", "--max-time", "5"], env, tmp_path))
    assert settings["max_time"] == "5.0 (from --max-time)" and settings["max_disk"] == "4096 (default)"
    assert settings["user"] == "(unset) (default)"
    assert settings["cache_dir"] == f"{tmp_path / 'cache' / 'rake-worker' / 'w1'} (default)"
    assert settings["workdir"] == "(a new directory under TMPDIR) (default)"
    given = shown(run("rake-worker", ["--show-config", "--workdir", str(tmp_path / "wd")], env, tmp_path))
    assert given["workdir"] == f"{tmp_path / 'wd'} (from --workdir)" and given["cache_dir"] == "(inside the workdir) (default)"


def test_colour_setting_shows_the_environment_above_the_file(tmp_path):
    env = programs_env(tmp_path, user='color = "always"\n')
    assert shown(run("rake-submit", ["--show-config"], env, tmp_path))["color"].startswith("always (from ")
    env["NO_COLOR"] = "1"
    assert shown(run("rake-submit", ["--show-config"], env, tmp_path))["color"] == "never (from NO_COLOR)"


@pytest.mark.timeout(30)
def test_the_config_files_broker_is_used_before_the_rakefiles_hosts(tmp_path):
    port = free_port()
    env = programs_env(tmp_path, user=f'broker = "tcp://127.0.0.1:{port}"\nconnect_timeout = 0.5\n')
    (tmp_path / "Rakefile").write_text("HOSTS = 127.0.0.2:1\nactionset1:\n\tremote-true\n")
    res = run("rake-submit", [], env, tmp_path)
    assert res.returncode == 69
    assert f"tried tcp://127.0.0.1:{port})" in res.stderr and "127.0.0.2" not in res.stderr


@pytest.mark.parametrize("text, message", [
    ('broker = "tcp://a:1"\njobs = = 3\n', ":2: Invalid value (column 8)"),
    ('color = "sometimes"\n', ":1: 'color' must be one of \"auto\", \"always\", \"never\", got 'sometimes'"),
    ('jobs = "eight"\n', ":1: 'jobs' must be an integer from 1 to 1048576, got 'eight'"),
    ('\n\nbrokr = "tcp://a:1"\n', ":3: unknown key 'brokr'"),
    ('[rake-worker]\nslots = 0\n', ":2: 'rake-worker.slots' must be an integer from 1 to 4096, got 0"),
    ('timeout = true\n', ":1: 'timeout' must be a number of seconds above 0 and below 1e9, got true"),
    ('[rake-worker]\nlog_level = "loud"\n', ":2: 'rake-worker.log_level' must be one of"),
    ('[rake-broker]\nhttp = "bogus"\n', ":2: 'rake-broker.http' must be HOST:PORT"),
    ('[submit]\njobs = 2\n', ": unknown key 'submit'"),
])
def test_a_bad_config_file_is_one_line_naming_file_line_and_key_with_exit_2(tmp_path, text, message):
    env = programs_env(tmp_path, user=text)
    path = str(tmp_path / "xdg" / "rake" / "config.toml")
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    for program, args in (("rake-submit", []), ("rake-worker", ["--show-config"]), ("rake-broker", ["--show-config"])):
        res = run(program, args, env, tmp_path)
        assert res.returncode == 2, (program, res.stderr)
        assert res.stderr.startswith(f"{program}: {path}{message}"), res.stderr
        assert len(res.stderr.splitlines()) == 1 and res.stdout == ""
    assert not (tmp_path / "Rakefile").with_name("ran").exists()


def test_worker_and_broker_read_their_tables_and_the_shared_broker(tmp_path):
    env = programs_env(tmp_path, system='broker = "tcp://central:6238"\n[rake-worker]\nslots = 3\nname = "box"\n'
                                       '[rake-broker]\nbind = "tcp://127.0.0.1:7000"\nlog_format = "json"\n')
    etc = str(tmp_path / "etc.toml")
    worker = shown(run("rake-worker", ["--show-config", "--name", "other"], env, tmp_path))
    assert worker["broker"] == f"tcp://central:6238 (from {etc})"
    assert worker["slots"] == f"3 (from {etc})" and worker["name"] == "other (from --name)"
    broker = shown(run("rake-broker", ["--show-config", "-q"], env, tmp_path))
    assert broker["bind"] == f"tcp://127.0.0.1:7000 (from {etc})"
    assert broker["log_format"] == f"json (from {etc})" and broker["log_level"] == "error (from -q)"


def test_parse_config_accepts_every_documented_key():
    text = (b'broker = "tcp://b:6238"\njobs = 8\ncolor = "never"\ntimeout = 600\nconnect_timeout = 1.5\n'
            b'worker_wait = 10\nbroker_wait = 60\n'
            b'[rake-worker]\nbroker = "tcp://b:6238"\nslots = 8\nname = "n"\nworkdir = "/w"\ncache_dir = "/c"\n'
            b'cache_size = 100\nisolate = "none"\nlog_level = "debug"\nlog_format = "json"\n'
            b'[rake-broker]\nbind = "tcp://0.0.0.0:6238"\nlog_level = "warning"\nlog_format = "text"\n')
    values = parse_config(text, "c.toml")
    assert values[("", "jobs")] == 8 and values[("rake-worker", "isolate")] == "none"
    assert len(values) == 19


def test_booleans_are_not_numbers_and_bytes_must_be_utf8():
    with pytest.raises(ConfigError, match="'jobs' must be an integer"):
        parse_config(b"jobs = true\n", "c.toml")
    with pytest.raises(ConfigError, match="c.toml: not UTF-8"):
        parse_config(b'broker = "\xff"\n', "c.toml")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program, args, env, message", [
    ("rake-submit", ["--broker", "garbage"], {}, "--broker must be an endpoint"),
    ("rake-submit", [], {"RAKE_BROKER": "foo:123"}, "RAKE_BROKER must be an endpoint"),
    ("rake-submit", ["--broker", "tcp://127.0.0.1:99999"], {}, "--broker has a bad port '99999'"),
    ("rake-status", ["--broker", "tcp://:6238"], {}, "--broker has a bad host ''"),
    ("rake-broker", ["--bind", "tcp://127.0.0.1:70000"], {}, "--bind has a bad port '70000'"),
    ("rake-worker", ["--broker", "tcp://localhost"], {}, "--broker must end in a port"),
    ("rake-worker", ["--broker", "tcp://_b:6238"], {}, "--broker has a bad host '_b'"),   # zmq refuses it
    ("rake-status", ["--broker", "tcp://_a;127.0.0.1:6238"], {}, "--broker has a bad source address '_a'"),
    ("rake-submit", ["--broker", "ipc:///tmp/" + "a" * 110], {}, "--broker has a path of 115 bytes, over the 107"),
    ("rake-worker", ["--broker", "ipc://@"], {}, "--broker must name a path after 'ipc://@'"),
    ("rake-broker", ["--bind", "ipc:///tmp/" + "b" * 110], {}, "--bind has a path of 115 bytes"),
])
def test_a_bad_endpoint_is_one_line_naming_where_it_came_from_with_exit_2(tmp_path, program, args, env, message):
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-touch ran\n")
    res = run(program, args, programs_env(tmp_path, **env), tmp_path)
    assert res.returncode == 2, res.stderr
    last = res.stderr.splitlines()[-1]   # rake-worker's argparse prints its usage first
    assert last.startswith(f"{program}: ") and message in last, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("endpoint, bind", [
    ("tcp://127.0.0.1:6238", False), ("tcp://build-host.example:6238", False), ("tcp://[::1]:6238", False),
    ("tcp://[fe80::1%eth0]:6238", False), ("tcp://127.0.0.1:0;10.0.0.2:6238", False), ("ipc:///run/rake.sock", False),
    ("tcp://*:6238", True), ("tcp://127.0.0.1:*", True), ("tcp://127.0.0.1:0", True), ("tcp://eth0:6238", True),
])
def test_every_endpoint_form_zmq_takes_passes_the_check(endpoint, bind):
    from rake_common.endpoints import endpoint_problem
    assert endpoint_problem(endpoint, bind=bind) is None


@pytest.mark.parametrize("bind", [False, True])
def test_an_inproc_endpoint_no_other_process_could_reach_is_refused(bind):
    from rake_common.endpoints import endpoint_problem
    assert endpoint_problem("inproc://rake", bind=bind).startswith("must be an endpoint such as")


@pytest.mark.parametrize("env, flag, message", [
    ({"RAKE_LIVENESS": "inf"}, None, "RAKE_LIVENESS must be a whole number, got 'inf'"),
    ({"RAKE_LIVENESS": "1.5"}, None, "RAKE_LIVENESS must be a whole number, got '1.5'"),
    ({"RAKE_LIVENESS": "0"}, None, "RAKE_LIVENESS must be a whole number from 1 to 100, got 0"),
    ({"RAKE_HEARTBEAT": "nan"}, None, "RAKE_HEARTBEAT must be 0.001 to 3600 seconds, got nan"),
    ({"RAKE_HEARTBEAT": "x"}, None, "RAKE_HEARTBEAT must be a number, got 'x'"),
    ({}, 0.0, "--heartbeat must be 0.001 to 3600 seconds, got 0"),
    ({"RAKE_HEARTBEAT": "0"}, 1.0, None),   # the flag wins
    ({"RAKE_LIVENESS": "3.0"}, 1.0, None),  # a whole number, written as a float
])
def test_timing_settings_out_of_range_name_their_source_and_range(monkeypatch, env, flag, message):
    from protocol.timing import Timing
    monkeypatch.delenv("RAKE_HEARTBEAT", raising=False)
    monkeypatch.delenv("RAKE_LIVENESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if message is None:
        assert Timing.from_env(flag).heartbeat == flag
    else:
        with pytest.raises(ValueError) as caught:
            Timing.from_env(flag)
        assert str(caught.value) == message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("program", ["rake-submit", "rake-worker", "rake-broker"])
def test_an_infinite_liveness_is_a_one_line_usage_error_for_every_program(program, tmp_path):
    import subprocess
    from tests.procs import command, rake_env
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    res = subprocess.run(command(program), cwd=tmp_path, env=rake_env(RAKE_LIVENESS="inf"),
                         capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert res.stderr.decode().strip().endswith("RAKE_LIVENESS must be a whole number, got 'inf'"), res.stderr
    assert len(res.stderr.decode().strip().splitlines()) == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args, message", [
    (["--bind", "foo", "--show-config"], "rake-broker: --bind must be an endpoint"),
    (["--rate", "nan"], "rake-broker: --rate must be above 0 and at most 1e9 messages a second, got nan"),
    (["--rate", "0"], "rake-broker: --rate must be above 0"),
    (["--burst", "0"], "rake-broker: --burst must be 1 or more messages, got 0"),
])
def test_bad_broker_settings_are_one_line_naming_the_flag_with_exit_2_even_with_show_config(args, message):
    import subprocess
    from tests.procs import command, rake_env
    res = subprocess.run(command("rake-broker") + args, env=rake_env(), capture_output=True, text=True,
                         timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr


@pytest.mark.parametrize("program, args, message", [
    ("rake-submit", ["-j", "0"], "rake-submit: error: -j must be at least 1, got 0 (see rake-submit --help)"),
    ("rake-submit", ["--timeout", "2e9"], "--timeout must be a number of seconds above 0 and below 1e9, got 2e+09"),
    ("rake-submit", ["--no-such-flag"], "rake-submit: error: unrecognized arguments: --no-such-flag"),
    ("rake-worker", ["-j", "0"], "rake-worker: error: --slots must be 1..4096, got 0"),
    ("rake-broker", ["--rate"], "rake-broker: error: argument --rate: expected one argument"),
    ("rake-status", ["--count", "0"], "rake-status: error: --count must be at least 1"),
    ("rake-keygen", [], "rake-keygen: error: the following arguments are required"),
])
def test_a_bad_option_is_one_line_naming_it_with_exit_2(tmp_path, program, args, message):
    res = run(program, args, programs_env(tmp_path), tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and message in res.stderr, res.stderr


@pytest.mark.parametrize("args, flag", [
    (["-f", ""], "-f"), ([""], "RAKEFILE"), (["-C", ""], "-C"), (["--joblog", ""], "--joblog"),
])
def test_an_empty_file_or_directory_is_refused_not_taken_as_the_default(tmp_path, args, flag):
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    res = run("rake-submit", args, programs_env(tmp_path), tmp_path)
    assert res.returncode == 2 and f"{flag} must not be empty" in res.stderr, res.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.timeout(30)
def test_two_rakefiles_given_with_f_are_refused_not_the_first_silently_dropped(tmp_path):
    (tmp_path / "A").write_text("actionset1:\n\ttouch ran-a\n")
    (tmp_path / "B").write_text("actionset1:\n\ttouch ran-b\n")
    res = run("rake-submit", ["-f", "A", "-f", "B"], programs_env(tmp_path), tmp_path)
    assert res.returncode == 2 and "-f given 2 times (A, B): rake reads one Rakefile" in res.stderr, res.stderr
    assert not (tmp_path / "ran-a").exists() and not (tmp_path / "ran-b").exists()


def test_dash_f_dash_reads_the_rakefile_from_standard_input(tmp_path):
    env = programs_env(tmp_path)
    res = subprocess.run(command("rake-submit") + ["-f", "-"], input="actionset1:\n\ttouch ran\n", env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and (tmp_path / "ran").exists(), res.stderr
    bad = subprocess.run(command("rake-submit") + ["-f", "-"], input="actionset1:\nbogus\n", env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "<stdin>:2: unknown directive" in bad.stderr, bad.stderr


def test_a_config_file_that_starts_with_a_byte_order_mark_is_read_as_without_it():
    assert parse_config(b'\xef\xbb\xbfjobs = 4\n', "c.toml") == {("", "jobs"): 4}


@pytest.mark.parametrize("program, extra", [("rake-submit", {"RAKE_HEARTBEAT": "abc"}), ("rake-worker", {"RAKE_LIVENESS": "0"}),
                                            ("rake-broker", {"RAKE_HEARTBEAT": "nan"})])
def test_show_config_refuses_a_heartbeat_that_a_run_would_refuse(tmp_path, program, extra):
    res = subprocess.run(command(program) + ["--show-config"], env={**rake_env(), **extra}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and ("RAKE_HEARTBEAT" in res.stderr or "RAKE_LIVENESS" in res.stderr)


def test_a_workdir_from_the_config_file_that_cannot_be_used_names_that_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[rake-worker]\nworkdir = "{tmp_path / "afile"}"\n')
    (tmp_path / "afile").write_text("")
    res = subprocess.run(command("rake-worker") + ["--broker", f"tcp://127.0.0.1:{free_port()}"],
                         env={**rake_env(), "RAKE_SYSTEM_CONFIG": str(config), "XDG_CONFIG_HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 2
    assert f"cannot use workdir {tmp_path / 'afile'} (from {config})" in res.stderr, res.stderr
