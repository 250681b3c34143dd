"""HOSTS entries of a Rakefile: host names, IPv4 and bracketed IPv6 literals, ports."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from protocol.paths import quote_text as _quote

_HOST_FORMS = "write host, host:port, [IPv6] or [IPv6]:port"
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")   # zmq refuses a leading "_"


@dataclass(frozen=True)
class Host:
    host: str
    port: int
    line: int

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host  # host names and IPv4 literals never contain ":"

    @property
    def endpoint(self) -> str:
        return f"tcp://[{self.host}]:{self.port}" if self.is_ipv6 else f"tcp://{self.host}:{self.port}"


def parse_port(text: str) -> int | None:
    # The length cap also keeps int() clear of Python's limit on huge digit strings.
    # Leading zeros are read as decimal ("041801" is 41801), as "06238" always was.
    digits = re.fullmatch(r"0*([0-9]{1,5})", text)
    return int(digits[1]) if digits and 1 <= int(digits[1]) <= 65535 else None


def _is_ipv6(text: str) -> bool:
    # ipaddress accepts any scope id ("%..."); only plain interface names belong in an endpoint.
    if not re.fullmatch(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?", text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_host(entry: str) -> tuple[str, int | None]:
    """One HOSTS entry -> (host, explicit port or None); a ValueError carries the message."""
    host, colon, port = entry.partition(":")
    if entry.startswith("["):
        m = re.fullmatch(r"\[([^\]]*)\](:(.*))?", entry)
        if not m:
            raise ValueError(f"bad host {_quote(entry)}: {_HOST_FORMS}")
        host, colon, port = m.group(1), m.group(2), m.group(3)
        if not _is_ipv6(host):
            raise ValueError(f"{_quote(host)} in {_quote(entry)} is not an IPv6 address")
    elif ":" in port and _is_ipv6(entry):
        raise ValueError(f"IPv6 address {_quote(entry)} must be in brackets: "
                         f"write {_quote(f'[{entry}]')} or {_quote(f'[{entry}]:port')}")
    elif ":" in port:
        raise ValueError(f"bad host {_quote(entry)}: {_HOST_FORMS}")
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(f"bad host name {_quote(host)} in {_quote(entry)}")
    if not colon:
        return host, None
    if parse_port(port) is None:
        raise ValueError(f"bad port {_quote(port)} in host {_quote(entry)} (must be 1..65535)")
    return host, parse_port(port)
