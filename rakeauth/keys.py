"""CURVE key files: make a key pair, read a public or secret key, in ZeroMQ's certificate format."""

from __future__ import annotations

import datetime
import os
import re
import stat

import zmq
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")   # \Z: "$" would let a final newline in

_TEMPLATE = """#   ****  Generated on {when} by rake-keygen  ****
#   ZeroMQ CURVE {kind} Certificate
#   {advice}
metadata
curve
    public-key = "{public}"
"""


class KeyFileError(Exception):
    """A key file is missing, unreadable or malformed: the operator's fault, exit status 2."""


def make_keypair(directory: str, name: str) -> tuple[str, str]:
    """Write DIR/NAME.key (public, 0644) and DIR/NAME.key_secret (0600); never overwrite."""
    if not NAME_RE.match(name):
        raise KeyFileError(f"key name {name!r} must be 1-64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'")
    public, secret = zmq.curve_keypair()
    when = datetime.datetime.now().isoformat(timespec="seconds")
    base = os.path.join(directory, name)
    texts = {
        base + PUBLIC_SUFFIX: (0o644, _TEMPLATE.format(
            when=when, kind="Public", advice="Copy this file to the peers that must trust it.",
            public=public.decode())),
        base + SECRET_SUFFIX: (0o600, _TEMPLATE.format(
            when=when, kind="**Secret**", advice="Keep this file private; never copy it.",
            public=public.decode()) + f'    secret-key = "{secret.decode()}"\n'),
    }
    for path in texts:
        if os.path.lexists(path):
            raise KeyFileError(f"{path} already exists; remove it first to make a new key")
    made = []
    try:
        for path, (mode, text) in texts.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            made.append(path)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
    except BaseException:
        # A full disk (or ^C) would leave an empty NAME.key that the next try refuses to
        # overwrite: remove what this call made, so a retry after freeing space just works.
        for path in made:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise
    return base + PUBLIC_SUFFIX, base + SECRET_SUFFIX


def read_keys(path: str, listed: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a certificate file, both as 40-character z85.
    `listed`: found in a key directory, so only a regular file is read, without blocking (a
    FIFO named *.key there must not hang the broker's loop); a file named on a command
    line may be anything readable, `<(vault read ...)` say."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if listed else 0))
        with os.fdopen(fd, "rb") as fh:
            if listed and not stat.S_ISREG(os.fstat(fd).st_mode):
                raise KeyFileError(f"cannot read key file {path}: not a regular file")
            data = fh.read(65536)
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from e
    found: dict[bytes, bytes] = {}
    for line in data.splitlines():
        key, sep, value = line.strip().partition(b"=")
        if sep and key.strip() in (b"public-key", b"secret-key"):
            found[key.strip()] = _check_key(value.strip(b" \t'\""), path)
    if b"public-key" not in found:
        raise KeyFileError(f"{path}: no public-key line (make keys with rake-keygen)")
    return found[b"public-key"], found.get(b"secret-key")


def read_secret(path: str) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    public, secret = read_keys(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (give the {SECRET_SUFFIX} file, not the {PUBLIC_SUFFIX} one)")
    return public, secret


def _check_key(value: bytes, path: str) -> bytes:
    try:
        if len(value) == 40 and len(z85.decode(value)) == 32:
            return value
    except Exception:   # z85 raises ValueError, KeyError, IndexError or struct.error
        pass
    raise KeyFileError(f"{path}: a key must be 40 characters of Z85")
