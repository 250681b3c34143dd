"""What an endpoint may look like, checked before zmq sees one: a clear line rather than a
ZMQError traceback, and no port past 65535 silently wrapped round."""

from __future__ import annotations

import re

# Not inproc://: only the process that binds one can reach it, so from a command line it
# would give a broker nobody can join, or a worker or submitter waiting for nobody.
PREFIXES = ("tcp://", "ipc://")
EXAMPLE = 'an endpoint such as "tcp://host:6238"'
# A name, an IPv4 address, an interface. Not starting with "_": zmq refuses to connect to it.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\]")


def endpoint_problem(text, bind: bool = False) -> str | None:
    """None for a usable endpoint, else what is wrong ("must be ..."), to follow its name.
    `bind` also allows "*" for the host or the port ("tcp://127.0.0.1:*" picks a free one)."""
    if not isinstance(text, str) or len(text) > 1024 or not text.startswith(PREFIXES):
        return f"must be {EXAMPLE}"
    if "\0" in text:   # from a config file's "\u0000": zmq would stop the name there
        return "must not hold a NUL character"
    if not text.startswith("tcp://"):
        return _ipc_problem(text)
    address = text[len("tcp://"):]
    if ";" in address and not bind:   # zmq's "tcp://SOURCE;HOST:PORT": the source is zmq's to check,
        if not re.match(r"[A-Za-z0-9\[:]", address):   # but for what its connect raises on at once
            return f"has a bad source address {address.split(';')[0]!r}"
        address = address.rsplit(";", 1)[1]
    host, colon, port = address.rpartition(":")
    if not colon:
        return f"must end in a port, as in {text}:6238"
    if not (_HOST.fullmatch(host) or _IPV6.fullmatch(host) or (bind and host == "*")):
        return f"has a bad host {host!r} (a name, an IPv4 address or a bracketed IPv6 one)"
    if bind and port == "*":
        return None
    if not re.fullmatch(r"[0-9]{1,5}", port) or not (0 if bind else 1) <= int(port) <= 65535:
        return f"has a bad port {port!r} ({'0..65535, or * for any free port' if bind else '1..65535'})"
    return None


IPC_PATH_MAX = 107   # bytes: a Unix socket's sun_path less its NUL (zmq.IPC_PATH_MAX_LEN)


def _ipc_problem(text: str) -> str | None:
    path = text.partition("://")[2]
    if not path or path == "@":
        return f"must name a path after {text!r}"
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > IPC_PATH_MAX:
        return f"has a path of {size} bytes, over the {IPC_PATH_MAX} a Unix socket can take"
    return None


def parse_http_addr(text: str) -> tuple[str, int]:
    """The dashboard's `PORT`, `:PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port), loopback
    when no host; ValueError saying what is wrong."""
    if "\0" in text:   # from a config file's "\u0000": the socket would raise a TypeError
        raise ValueError("a host name cannot hold a NUL character")
    if text.startswith("[") and text.endswith("]"):
        raise ValueError(f"needs a port after the address, e.g. {text}:8080")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:8080")
    if not port.isdigit() or len(port) > 5 or int(port) > 65535:
        raise ValueError("expected HOST:PORT with a port 0..65535 (0 picks a free one)")
    return host or "127.0.0.1", int(port)
