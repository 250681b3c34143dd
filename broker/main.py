"""rake-broker command line: bind, print the endpoint, route until signalled."""

from __future__ import annotations

import argparse
import signal
import sys

import zmq

from broker.auth import KeyRing
from broker.bind import is_local_endpoint
from broker.loop import BrokerLoop, ServerCurve
from broker.ratelimit import RateLimiter
from protocol.timing import Timing
from protocol.version import VERSION
from rakeauth.keys import KeyFileError, read_secret

DEFAULT_BIND = "tcp://127.0.0.1:6238"
EXIT_USAGE = 2


class ConfigError(Exception):
    """The command line asks for something unsafe or inconsistent: exit status 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-broker", description="Route rake jobs between submitters and workers.")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"endpoint to bind (default {DEFAULT_BIND}); 'tcp://127.0.0.1:*' picks a free port")
    p.add_argument("--curve-secret", metavar="FILE", help="the broker's NAME.key_secret from rake-keygen: require CURVE keys")
    p.add_argument("--submitter-keys", metavar="DIR", help="directory of public keys (*.key) allowed to submit")
    p.add_argument("--worker-keys", metavar="DIR", help="directory of public keys (*.key) allowed to run jobs")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without keys (anyone who reaches it can run commands on the workers)")
    p.add_argument("--rate", type=float, default=5000.0, help="messages a second each peer may send (default 5000); excess is dropped")
    p.add_argument("--burst", type=int, default=10000, help="messages a peer may send at once above --rate (default 10000)")
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors")
    p.add_argument("--version", action="version", version=f"rake-broker {VERSION}")
    return p.parse_args(argv)


def server_curve(args: argparse.Namespace, log) -> ServerCurve | None:
    """The CURVE setup the flags ask for, None for none; refuses an unauthenticated network bind."""
    given = [args.curve_secret, args.submitter_keys, args.worker_keys]
    if not any(given):
        if not is_local_endpoint(args.bind):
            if not args.insecure:
                raise ConfigError(f"refusing to bind {args.bind} without authentication: anyone who reaches it could run "
                                  "commands on the workers; give --curve-secret, --submitter-keys and --worker-keys "
                                  "(see rake-keygen), or --insecure")
            print(f"rake-broker: warning: {args.bind} is reachable from the network with no authentication "
                  "(--insecure): anyone who reaches it can run commands on the workers", file=sys.stderr, flush=True)
        return None
    if not all(given):
        raise ConfigError("CURVE needs all three of --curve-secret, --submitter-keys and --worker-keys")
    _, secret = read_secret(args.curve_secret)
    return ServerCurve(secret, KeyRing(args.submitter_keys, args.worker_keys, log))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"rake-broker: {s}", file=sys.stderr, flush=True))
    try:
        timing = Timing.from_env(args.heartbeat)
        curve = server_curve(args, log)
        loop = BrokerLoop(args.bind, timing, log, curve=curve, limiter=RateLimiter(args.rate, args.burst))
    except (ValueError, ConfigError, KeyFileError) as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return EXIT_USAGE
    except zmq.ZMQError as e:
        print(f"rake-broker: cannot bind {args.bind}: {e.strerror}", file=sys.stderr)
        return 69
    except RuntimeError as e:    # the authenticator could not start: never run open instead
        print(f"rake-broker: {e}", file=sys.stderr)
        return 1
    print(loop.endpoint, flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    signal.signal(signal.SIGHUP, lambda *_: loop.reload_keys())
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
