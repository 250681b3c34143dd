"""Client-side CURVE: which keys a worker or submitter uses, and setting them on a socket."""

from __future__ import annotations

import os
from dataclasses import dataclass

import zmq

from rakeauth.keys import KeyFileError, read_keys, read_secret

KEY_ENV = "RAKE_CURVE_KEY"        # the client's own NAME.key_secret
SERVER_ENV = "RAKE_SERVER_KEY"    # the broker's public NAME.key


@dataclass(frozen=True)
class ClientCurve:
    public: bytes
    secret: bytes
    server: bytes

    def apply(self, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE client; must run before connect."""
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server)


def client_curve(key_file: str | None, server_file: str | None, env=os.environ) -> ClientCurve | None:
    """Keys from the flags, else the environment; None when neither is set (plain NULL security).

    Raises KeyFileError when only one of the two is given or a file is unusable.
    """
    key_file = key_file or env.get(KEY_ENV) or None
    server_file = server_file or env.get(SERVER_ENV) or None
    if key_file is None and server_file is None:
        return None
    if key_file is None or server_file is None:
        missing = "--curve-key (or RAKE_CURVE_KEY)" if key_file is None else "--server-key (or RAKE_SERVER_KEY)"
        raise KeyFileError(f"CURVE needs both a key pair and the broker's public key: {missing} is missing")
    public, secret = read_secret(key_file)
    server, _ = read_keys(server_file)
    return ClientCurve(public, secret, server)


def add_client_options(parser) -> None:
    parser.add_argument("--curve-key", default=None, metavar="FILE",
                        help=f"this peer's NAME.key_secret from rake-keygen (or {KEY_ENV}); enables CURVE")
    parser.add_argument("--server-key", default=None, metavar="FILE",
                        help=f"the broker's public NAME.key (or {SERVER_ENV})")
