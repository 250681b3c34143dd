"""rake-broker command line: bind, print the endpoint, route until signalled."""

from __future__ import annotations

import argparse
import signal
import sys

import zmq

from broker.loop import BrokerLoop
from protocol.timing import Timing
from protocol.version import VERSION

DEFAULT_BIND = "tcp://127.0.0.1:6238"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-broker", description="Route rake jobs between submitters and workers.")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"endpoint to bind (default {DEFAULT_BIND}); 'tcp://127.0.0.1:*' picks a free port")
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors")
    p.add_argument("--version", action="version", version=f"rake-broker {VERSION}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"rake-broker: {s}", file=sys.stderr, flush=True))
    try:
        timing = Timing.from_env(args.heartbeat)
        loop = BrokerLoop(args.bind, timing, log)
    except ValueError as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return 2
    except zmq.ZMQError as e:
        print(f"rake-broker: cannot bind {args.bind}: {e.strerror}", file=sys.stderr)
        return 69
    print(loop.endpoint, flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
