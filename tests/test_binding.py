"""rake-broker refuses to listen on the network without keys; bad key options are usage errors (exit 2)."""

from __future__ import annotations

import subprocess

import pytest

from rakeauth.keys import make_keypair
from tests.procs import command, rake_env, submit

pytestmark = pytest.mark.timeout(30)


def run(name: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(command(name) + list(args), env=rake_env(), capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:1", "tcp://*:1", "tcp://[::]:1", "tcp://eth0:1"])
def test_broker_refuses_a_network_bind_without_keys(bind):
    res = run("rake-broker", "--bind", bind)
    assert res.returncode == 2
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1 and "refusing to bind" in lines[0] and "--insecure" in lines[0]
    assert res.stdout == b""


def test_insecure_allows_a_network_bind_with_a_warning(procs):
    proc = procs.start(command("rake-broker") + ["--bind", "tcp://0.0.0.0:*", "--insecure"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    endpoint = proc.stdout.readline().decode().strip()
    proc.kill()
    warning = proc.stderr.readline().decode()
    proc.stderr.close()
    assert endpoint.startswith("tcp://0.0.0.0:")
    assert "warning" in warning and "no authentication" in warning


@pytest.mark.parametrize("missing", ["--curve-secret", "--submitter-keys", "--worker-keys"])
def test_broker_needs_all_three_curve_options(tmp_path, missing):
    make_keypair(str(tmp_path), "broker")
    opts = {"--curve-secret": str(tmp_path / "broker.key_secret"),
            "--submitter-keys": str(tmp_path), "--worker-keys": str(tmp_path)}
    del opts[missing]
    res = run("rake-broker", "--bind", "tcp://127.0.0.1:*", *[x for kv in opts.items() for x in kv])
    assert res.returncode == 2 and b"all three" in res.stderr


def test_broker_refuses_a_public_key_as_its_secret_and_a_missing_key_directory(tmp_path):
    make_keypair(str(tmp_path), "broker")
    res = run("rake-broker", "--curve-secret", str(tmp_path / "broker.key"),
              "--submitter-keys", str(tmp_path), "--worker-keys", str(tmp_path))
    assert res.returncode == 2 and b"holds no secret key" in res.stderr
    res = run("rake-broker", "--curve-secret", str(tmp_path / "broker.key_secret"),
              "--submitter-keys", str(tmp_path / "nope"), "--worker-keys", str(tmp_path))
    assert res.returncode == 2 and b"not a directory" in res.stderr


def test_clients_need_both_their_key_and_the_server_key(tmp_path):
    make_keypair(str(tmp_path), "w1")
    res = run("rake-worker", "--curve-key", str(tmp_path / "w1.key_secret"))
    assert res.returncode == 2 and b"--server-key" in res.stderr
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-true\n")
    res = submit(["--broker", "tcp://127.0.0.1:1", "--server-key", str(tmp_path / "w1.key")], tmp_path)
    assert res.returncode == 2 and b"--curve-key" in res.stderr
    # With no broker configured too: the keys are not silently dropped for the embedded cluster.
    res = submit(["--curve-key", str(tmp_path / "missing.key_secret")], tmp_path)
    assert res.returncode == 2 and b"--server-key" in res.stderr


def test_keygen_makes_a_pair_and_refuses_to_overwrite_it(tmp_path):
    res = run("rake-keygen", str(tmp_path / "keys"), "alice")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "keys" / "alice.key").exists() and (tmp_path / "keys" / "alice.key_secret").exists()
    again = run("rake-keygen", str(tmp_path / "keys"), "alice")
    assert again.returncode == 2 and b"already exists" in again.stderr


def test_key_settings_come_from_the_config_file_and_a_network_bind_there_is_refused_too(tmp_path):
    make_keypair(str(tmp_path), "broker")
    config = tmp_path / "config.toml"
    config.write_text('[rake-broker]\nbind = "tcp://0.0.0.0:1"\n')
    env = rake_env(RAKE_SYSTEM_CONFIG=str(config), XDG_CONFIG_HOME=str(tmp_path / "none"))
    res = subprocess.run(command("rake-broker"), env=env, capture_output=True, timeout=10)
    assert res.returncode == 2 and b"refusing to bind tcp://0.0.0.0:1" in res.stderr
    config.write_text(f'[rake-broker]\ncurve_secret = "{tmp_path}/broker.key_secret"\nworker_keys = "{tmp_path}"\n'
                      f'submitter_keys = "{tmp_path}"\nrate = 50\n')
    res = subprocess.run(command("rake-broker") + ["--show-config"], env=env, capture_output=True, timeout=10)
    assert res.returncode == 0
    assert f"curve_secret = {tmp_path}/broker.key_secret (from {config})".encode() in res.stdout
    assert f"rate = 50 (from {config})".encode() in res.stdout


@pytest.mark.timeout(30)
def test_a_second_broker_on_a_live_ipc_path_is_refused_and_the_path_goes_with_the_first(procs, tmp_path):
    path = tmp_path / "broker.sock"
    first = procs.start(command("rake-broker") + ["--bind", f"ipc://{path}", "-q"], stdout=subprocess.PIPE)
    assert first.stdout.readline().decode().strip() == f"ipc://{path}"
    second = subprocess.run(command("rake-broker") + ["--bind", f"ipc://{path}"], env=rake_env(),
                            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert second.returncode == 69 and "Address already in use" in second.stderr
    first.terminate()
    assert first.wait(timeout=10) == 0
    assert not path.exists()


def test_a_bind_host_that_names_nothing_says_so(tmp_path):
    res = subprocess.run(command("rake-broker") + ["--bind", "tcp://no-such-host.invalid:7321", "--insecure"],
                         env=rake_env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 69
    assert res.stderr.splitlines()[-1] == ("rake-broker: error: cannot bind tcp://no-such-host.invalid:7321: "
                                           "no interface or host has that name")
