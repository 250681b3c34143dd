"""Multi-host: broker, two workers and the submitter each in their own network namespace,
talking CURVE (a broker bound to a non-loopback address needs keys)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from rakeauth.keys import make_keypair
from tests.netns import Hosts, netns_available
from tests.procs import command, rake_env, wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-c"


def make_keys(root: Path) -> dict[str, str]:
    """Key pairs for the broker, w1, w2 and alice, with the public ones listed by role."""
    paths = {"workers": str(root / "workers"), "submitters": str(root / "submitters")}
    for d in ("workers", "submitters"):
        os.makedirs(paths[d])
    for name in ("broker", "w1", "w2", "alice"):
        public, paths[name] = make_keypair(str(root), name)
        if name != "broker":
            shutil.copy(public, paths["submitters" if name == "alice" else "workers"])
    paths["server"] = str(root / "broker.key")
    return paths


@pytest.mark.timeout(120)
def test_rakefile_runs_across_hosts_in_separate_network_namespaces(procs, tmp_path):
    reason = netns_available()
    if reason:
        pytest.skip(reason)
    hosts = Hosts(f"rk{os.getpid() % 100000}")
    try:
        broker_ns, broker_addr = hosts.host("b", 1)
        worker_ns = [hosts.host(f"w{i}", 10 + i)[0] for i in (1, 2)]
        submit_ns, _ = hosts.host("s", 20)
        log = tmp_path / "broker.log"
        keys = make_keys(tmp_path / "keys")
        broker = procs.start(["ip", "netns", "exec", broker_ns, *command("rake-broker"),
                              "--bind", f"tcp://{broker_addr}:6238", "--curve-secret", keys["broker"],
                              "--worker-keys", keys["workers"], "--submitter-keys", keys["submitters"]],
                             stdout=subprocess.PIPE, stderr=log.open("wb"))
        assert broker.stdout.readline().decode().strip() == f"tcp://{broker_addr}:6238"
        for i, ns in enumerate(worker_ns, 1):
            procs.start(["ip", "netns", "exec", ns, *command("rake-worker"), "--name", f"w{i}",
                         "--broker", f"tcp://{broker_addr}:6238", "--slots", "1",
                         "--workdir", str(tmp_path / f"scratch{i}"), "--curve-key", keys[f"w{i}"],
                         "--server-key", keys["server"]], stderr=subprocess.DEVNULL)
        assert wait_until(lambda: log.read_text().count(" joined") == 2, 20), log.read_text()
        work = tmp_path / "hello"
        shutil.copytree(EXAMPLE, work)
        rakefile = (work / "Rakefile").read_text().replace("remote-cc", "remote-echo on-$RAKE_WORKER; cc")
        (work / "Rakefile").write_text(f"HOSTS = {broker_addr}\n" + rakefile)
        res = subprocess.run(["ip", "netns", "exec", submit_ns, *command("rake-submit")], cwd=work,
                             env=rake_env(RAKE_CURVE_KEY=keys["alice"], RAKE_SERVER_KEY=keys["server"]),
                             capture_output=True, timeout=90)
        assert res.returncode == 0, res.stderr
        assert b"cube(7) = 343\n" in res.stdout
        seen = Counter(w for w in res.stdout.decode().split() if w.startswith("on-"))
        assert set(seen) == {"on-w1", "on-w2"}, res.stdout
    finally:
        procs.stop()
        hosts.close()
