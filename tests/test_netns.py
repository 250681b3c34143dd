"""Multi-host: broker, two workers and the submitter each in their own network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.procs import command, rake_env, wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-c"
SUBNET = "10.231.77"     # only inside namespaces this test creates


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def netns_available() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"rkprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"cannot create network namespaces here: {e}"
    return None


class Hosts:
    """Namespaces joined by a bridge in a hub namespace; everything removed in close()."""

    def __init__(self, tag: str):
        self.tag, self.namespaces = tag, []
        self.hub = self._ns("hub")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")

    def _ns(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def host(self, role: str, number: int) -> tuple[str, str]:
        ns = self._ns(role)
        inner, outer = f"{self.tag}a{number}", f"{self.tag}b{number}"
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", ns)
        ip("link", "set", outer, "netns", self.hub)
        ip("-n", ns, "addr", "add", f"{SUBNET}.{number}/24", "dev", inner)
        ip("-n", ns, "link", "set", inner, "up")
        ip("-n", self.hub, "link", "set", outer, "master", "br0")
        ip("-n", self.hub, "link", "set", outer, "up")
        return ns, f"{SUBNET}.{number}"

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


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
        broker = procs.start(["ip", "netns", "exec", broker_ns, *command("rake-broker"),
                              "--bind", f"tcp://{broker_addr}:6238"],
                             stdout=subprocess.PIPE, stderr=log.open("wb"))
        assert broker.stdout.readline().decode().strip() == f"tcp://{broker_addr}:6238"
        for i, ns in enumerate(worker_ns, 1):
            procs.start(["ip", "netns", "exec", ns, *command("rake-worker"), "--name", f"w{i}",
                         "--broker", f"tcp://{broker_addr}:6238", "--slots", "1",
                         "--workdir", str(tmp_path / f"scratch{i}")], stderr=subprocess.DEVNULL)
        assert wait_until(lambda: log.read_text().count(" joined") == 2, 20), log.read_text()
        work = tmp_path / "hello"
        shutil.copytree(EXAMPLE, work)
        rakefile = (work / "Rakefile").read_text().replace("remote-cc", "remote-echo on-$RAKE_WORKER; cc")
        (work / "Rakefile").write_text(f"HOSTS = {broker_addr}\n" + rakefile)
        res = subprocess.run(["ip", "netns", "exec", submit_ns, *command("rake-submit")], cwd=work,
                             env=rake_env(), capture_output=True, timeout=90)
        assert res.returncode == 0, res.stderr
        assert b"cube(7) = 343\n" in res.stdout
        seen = Counter(w for w in res.stdout.decode().split() if w.startswith("on-"))
        assert set(seen) == {"on-w1", "on-w2"}, res.stdout
    finally:
        procs.stop()
        hosts.close()
