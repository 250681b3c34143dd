"""Test hosts as network namespaces joined by a bridge; everything made here is removed."""

from __future__ import annotations

import os
import shutil
import subprocess

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

    def link(self, number: int, up: bool) -> None:
        """Cut (or mend) host `number`'s cable at the bridge."""
        ip("-n", self.hub, "link", "set", f"{self.tag}b{number}", "up" if up else "down")

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
