"""rake-keygen command line: make a CURVE key pair for a broker, worker or submitter."""

from __future__ import annotations

import os
import sys

from protocol.version import VERSION
from rake_common.cli import Parser, write_stdout
from rakeauth.keys import NAME_RE, KeyFileError, make_keypair

EPILOG = """Give the broker its NAME.key_secret with --curve-secret and every client the broker's
NAME.key with --server-key. Put each client's NAME.key into the broker's --worker-keys or
--submitter-keys directory; each client keeps its NAME.key_secret (--curve-key)."""


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="rake-keygen", description="Make a CURVE key pair: DIR/NAME.key and DIR/NAME.key_secret.",
                                epilog=EPILOG)
    p.add_argument("directory", help="where to write the two files (created if missing)")
    p.add_argument("name", help="the key's name, for people (e.g. the host name): the file is NAME.key, and the broker's log lines about a key name it")
    p.add_argument("--version", action="version", version=f"rake-keygen {VERSION}")
    args = p.parse_args(argv)
    if args.directory == "":   # an unset "$DIR": not "here", and not "cannot write into : ..."
        p.error("DIR must not be empty")
    if not NAME_RE.match(args.name):   # before making anything
        p.error(f"key name {args.name!r} must be 1-64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'")
    try:
        os.makedirs(args.directory, mode=0o700, exist_ok=True)
        public, secret = make_keypair(args.directory, args.name)
    except KeyFileError as e:
        print(f"rake-keygen: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # makedirs says "File exists" of a file where the directory should be
        why = "it is not a directory" if os.path.exists(args.directory) and not os.path.isdir(args.directory) else e.strerror
        print(f"rake-keygen: cannot write into {args.directory}: {why}", file=sys.stderr)
        return 2
    problem = write_stdout(f"public key: {public}\nsecret key: {secret}\n")
    if problem:   # the keys are written: only this report of them is lost
        print(f"rake-keygen: wrote the key pair, but cannot write to stdout: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":   # as the installed program: entry's care for streams, locale and Ctrl-C
    from rake_common.entry import keygen
    sys.exit(keygen())
