"""rake-broker command line: bind, print the endpoint, route until signalled."""

from __future__ import annotations

import argparse
import signal
import sys

import zmq

from broker.loop import BrokerLoop
from protocol.timing import Timing
from protocol.version import VERSION
from rake_common.config import LOG_FORMATS, LOG_LEVELS, ConfigError, load_config, resolve, show
from rake_common.logsetup import Log

DEFAULT_BIND = "tcp://127.0.0.1:6238"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-broker", description="Route rake jobs between submitters and workers.")
    p.add_argument("--bind", default=None, help=f"endpoint to bind (default {DEFAULT_BIND}); 'tcp://127.0.0.1:*' picks a free port")
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="least important messages logged (default info)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None, help="text lines, or one JSON object per line")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors (--log-level error)")
    p.add_argument("--show-config", action="store_true", help="print the effective settings and where they came from")
    p.add_argument("--version", action="version", version=f"rake-broker {VERSION}")
    return p.parse_args(argv)


def settings(args: argparse.Namespace, config) -> dict:
    """Flag, then the [rake-broker] table of the configuration files, then the default."""
    level = "error" if args.quiet and args.log_level is None else args.log_level
    return {s.name: s for s in (
        resolve("bind", args.bind, "--bind", config, "rake-broker", "bind", DEFAULT_BIND),
        resolve("log_level", level, "--log-level" if args.log_level else "-q", config, "rake-broker", "log_level", "info"),
        resolve("log_format", args.log_format, "--log-format", config, "rake-broker", "log_format", "text"),
    )}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        chosen = settings(args, load_config())
    except ConfigError as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return 2
    if args.show_config:
        sys.stdout.write(show(list(chosen.values()), load_config()))
        return 0
    bind = chosen["bind"].value
    log = Log("rake-broker", chosen["log_level"].value, chosen["log_format"].value)
    try:
        timing = Timing.from_env(args.heartbeat)
        loop = BrokerLoop(bind, timing, log)
    except ValueError as e:
        log.error(str(e))
        return 2
    except zmq.ZMQError as e:
        log.error(f"cannot bind {bind}: {e.strerror}")
        return 69
    print(loop.endpoint, flush=True)
    log.debug(f"bound {loop.endpoint}; heartbeat {timing.heartbeat:g}s, liveness {timing.liveness}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
