"""Deployment: --version everywhere, log levels and JSON logs, the example systemd units."""

from __future__ import annotations

import configparser
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from protocol.version import VERSION
from rake_common.logsetup import Log
from tests.procs import command, rake_env, wait_until

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
PROGRAMS = ("rake-broker", "rake-worker", "rake-submit", "rake-status", "rake-keygen")


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_command_prints_its_version(program):
    res = subprocess.run(command(program) + ["--version"], capture_output=True, text=True, timeout=30,
                         env=rake_env())
    assert res.returncode == 0 and res.stdout == f"{program} {VERSION}\n"


def test_log_levels_filter_and_json_has_ts_level_component_msg():
    out = io.StringIO()
    log = Log("rake-worker", "warning", "json", stream=out)
    log("joined")
    log.debug("detail")
    log.warning("disk \"full\"")
    log.error("gone")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["level"], r["msg"]) for r in rows] == [("warning", 'disk "full"'), ("error", "gone")]
    assert all(set(r) == {"ts", "level", "component", "msg"} and r["component"] == "rake-worker" for r in rows)
    assert rows[0]["ts"].endswith("Z") and "T" in rows[0]["ts"]
    text = io.StringIO()
    plain = Log("rake-broker", "debug", "text", stream=text)
    plain("worker w1 joined")
    plain.warning("queue full")
    assert text.getvalue() == "rake-broker: worker w1 joined\nrake-broker: warning: queue full\n"


@pytest.mark.timeout(60)
def test_a_text_log_line_stays_one_line_whatever_a_peer_named_itself():
    text = io.StringIO()
    Log("rake-broker", "info", "text", stream=text)("worker \x1b[31mw1\nrake-broker: forged (h) joined")
    assert text.getvalue() == "rake-broker: worker \\x1b[31mw1\\x0arake-broker: forged (h) joined\n"


def test_broker_and_worker_log_json_lines_at_the_level_asked(procs, tmp_path):
    broker_log, quiet_log, chatty_log = (tmp_path / n for n in ("broker.log", "quiet.log", "chatty.log"))
    broker = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "--log-format", "json",
                                                   "--log-level", "debug"],
                         stdout=subprocess.PIPE, stderr=broker_log.open("wb"))
    endpoint = broker.stdout.readline().decode().strip()
    for name, log, level in (("quiet", quiet_log, "error"), ("chatty", chatty_log, "debug")):
        (tmp_path / name).mkdir()
        procs.start(command("rake-worker") + ["--broker", endpoint, "--name", name, "--workdir", str(tmp_path / name),
                                              "--isolate", "none", "--log-format", "json", "--log-level", level],
                    stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    assert wait_until(lambda: broker_log.read_text().count(" joined") == 2, 20), broker_log.read_text()
    assert wait_until(lambda: chatty_log.read_text() != "", 10)
    broker_rows = [json.loads(line) for line in broker_log.read_text().splitlines()]
    assert {r["level"] for r in broker_rows} >= {"debug", "info"}
    assert all(r["component"] == "rake-broker" for r in broker_rows)
    assert any(r["msg"].startswith("worker chatty") and r["msg"].endswith("joined") for r in broker_rows)
    chatty = [json.loads(line) for line in chatty_log.read_text().splitlines()]
    assert any("slots, broker" in r["msg"] for r in chatty)    # its start-up line, at info
    assert quiet_log.read_text() == ""                          # error level: none of that


def units() -> list[Path]:
    return sorted(CONTRIB.glob("*.service"))


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(path)
    return unit


def test_there_are_units_for_broker_and_worker():
    assert [p.name for p in units()] == ["rake-broker.service", "rake-worker.service"]


def test_stopping_the_worker_unit_signals_the_worker_alone_so_that_it_drains():
    """KillMode=control-group would send SIGTERM to every action too: they would fail."""
    service = read_unit(next(p for p in units() if p.name == "rake-worker.service"))["Service"]
    assert (service["KillMode"], service["KillSignal"]) == ("mixed", "SIGTERM")


@pytest.mark.parametrize("path", units(), ids=lambda p: p.name)
def test_each_unit_is_hardened_restarts_and_its_command_line_is_accepted(path, tmp_path):
    service = read_unit(path)["Service"]
    for key, value in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("Restart", "on-failure"),
                       ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", "")):
        assert service.get(key) == value, (key, service.get(key))
    argv = shlex.split(service["ExecStart"])
    program = Path(argv[0]).name
    assert program in PROGRAMS
    # The flags the unit passes are real: the program accepts them and reports them back.
    res = subprocess.run(command(program) + argv[1:] + ["--show-config"], capture_output=True, text=True,
                         timeout=30, env=rake_env())
    assert res.returncode == 0, res.stderr
    assert "log_format = json (from --log-format)" in res.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("path", units(), ids=lambda p: p.name)
def test_systemd_analyze_verifies_each_unit(path, tmp_path):
    script = Path(command("rake-broker")[0])
    if script.name != "rake-broker":
        pytest.skip("the programs are not installed as scripts here")
    copy = tmp_path / path.name
    # Quoted, with systemd's specifier character escaped: the clone's path may hold spaces or "%".
    here = str(script.parent).replace("%", "%%")
    copy.write_text(re.sub(r"^ExecStart=/usr/local/bin/(\S+)", lambda m: f'ExecStart="{here}/{m[1]}"',
                           path.read_text(), flags=re.M))
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    if res.returncode != 0 and "Failed to" in res.stderr and "bus" in res.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {res.stderr.strip()[:200]}")
    assert res.returncode == 0 and res.stderr == "", res.stderr
