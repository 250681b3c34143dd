"""Is a bind endpoint reachable from other hosts? Anything we cannot prove local counts as yes."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat


def is_local_endpoint(endpoint: str, resolve=socket.getaddrinfo) -> bool:
    """True only for inproc://, ipc:// and tcp:// on 127.0.0.0/8 or ::1 (names: every address)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        return False   # pgm, epgm, ws...: multicast or web transports are never local
    host = _host(rest)
    if host in ("", "*"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in resolve(host, None)}
    except (OSError, UnicodeError):
        return False   # an interface name (eth0) or an unknown host: assume the network
    return bool(addresses) and all(_loopback(a) for a in addresses)


def ipc_path(endpoint: str) -> str | None:
    """The file system path of an ipc:// endpoint, or None (not ipc, "*", or abstract "@")."""
    scheme, sep, path = endpoint.partition("://")
    if scheme != "ipc" or not sep or path in ("", "*") or path.startswith("@"):
        return None
    return path


def ipc_not_a_socket(endpoint: str) -> str | None:
    """Why an ipc:// path must not be bound: libzmq unlinks whatever is there before it
    binds, so a regular file (or a link, a directory's entry) named by mistake would be
    deleted. None when the path is free or holds a socket."""
    path = ipc_path(endpoint)
    if path is None:
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot use {path}: {e.strerror}"
    if stat.S_ISSOCK(st.st_mode):
        return None
    return f"{path} exists and is not a socket: refusing to replace it (remove it, or choose another path)"


def ipc_in_use(endpoint: str) -> bool:
    """Whether a live process listens on an ipc:// path: binding it again would silently
    take it over (libzmq unlinks the file), where TCP says "address in use"."""
    scheme, sep, path = endpoint.partition("://")
    if scheme != "ipc" or not sep or path in ("", "*") or path.startswith("@"):
        return False   # "*": a fresh name; "@": the abstract namespace cannot be taken over
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        return True
    except OSError:   # no file, a stale one (refused), not a socket: free to bind
        return False
    finally:
        probe.close()


def _host(rest: str) -> str:
    """The host of `host:port`, `[v6]:port` or `source;host:port` (the bind side is after ';')."""
    rest = rest.rsplit(";", 1)[-1]
    if rest.startswith("["):
        return rest[1:rest.find("]")] if "]" in rest else ""
    return rest.rsplit(":", 1)[0]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
