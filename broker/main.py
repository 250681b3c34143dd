"""rake-broker command line: bind, print the endpoint, route until signalled."""

from __future__ import annotations

import argparse
import signal
import sys

import zmq

from broker.dashboard import Dashboard, is_loopback, parse_http_addr
from broker.loop import BrokerLoop
from protocol.timing import Timing
from protocol.version import VERSION

DEFAULT_BIND = "tcp://127.0.0.1:6238"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-broker", description="Route rake jobs between submitters and workers.")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"endpoint to bind (default {DEFAULT_BIND}); 'tcp://127.0.0.1:*' picks a free port")
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("--http", metavar="ADDR", default=None,
                   help="serve the live dashboard, /api/status and /metrics on HOST:PORT (port 0 picks one; loopback unless --insecure)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --http address (the dashboard has no authentication)")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors")
    p.add_argument("--version", action="version", version=f"rake-broker {VERSION}")
    return p.parse_args(argv)


def http_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """The --http address, checked; ValueError says what is wrong with it."""
    if args.http is None:
        return None
    host, port = parse_http_addr(args.http)
    if not is_loopback(host) and not args.insecure:
        raise ValueError(f"--http {args.http} is not a loopback address; the dashboard has no "
                         "authentication, so add --insecure to serve it there anyway")
    return host, port


def start_dashboard(addr: tuple[str, int] | None) -> Dashboard | None:
    if addr is None:
        return None
    try:
        return Dashboard(*addr)
    except OSError as e:
        raise OSError(f"cannot serve --http on {addr[0]}:{addr[1]}: {e.strerror}") from e


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"rake-broker: {s}", file=sys.stderr, flush=True))
    try:
        timing = Timing.from_env(args.heartbeat)
        addr = http_address(args)
    except ValueError as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return 2
    try:
        dashboard = start_dashboard(addr)
    except OSError as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return 69
    try:
        loop = BrokerLoop(args.bind, timing, log, dashboard=dashboard)
    except zmq.ZMQError as e:
        print(f"rake-broker: cannot bind {args.bind}: {e.strerror}", file=sys.stderr)
        if dashboard is not None:
            dashboard.close()
        return 69
    print(loop.endpoint, flush=True)    # first line: tests and scripts read the endpoint here
    if dashboard is not None:
        print(dashboard.url, flush=True)
        dashboard.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    try:
        loop.run()
    finally:
        if dashboard is not None:
            dashboard.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
