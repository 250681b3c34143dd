"""rake-broker command line: bind, print the endpoint, route until signalled."""

from __future__ import annotations

import argparse
import errno
import signal
import sys

import zmq

from broker.auth import KeyRing
from broker.bind import is_local_endpoint
from broker.dashboard import is_loopback, open_dashboard
from broker.loop import BrokerLoop, ServerCurve
from broker.ratelimit import RateLimiter
from protocol.timing import Timing
from protocol.version import VERSION
from rake_common.cli import Parser, print_stdout, write_stdout
from rake_common.config import (LOG_FORMATS, LOG_LEVELS, ConfigError, line_of, load_config, resolve, show,
                                timing_settings)
from rake_common.endpoints import endpoint_problem, parse_http_addr
from rake_common.logsetup import Log
from rakeauth.keys import KeyFileError, read_secret

DEFAULT_BIND = "tcp://127.0.0.1:6238"
EXIT_USAGE = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="rake-broker", description="Route rake jobs between submitters and workers.")
    p.add_argument("--bind", default=None, help=f"endpoint to bind (default {DEFAULT_BIND}); 'tcp://127.0.0.1:*' picks a free port")
    p.add_argument("--curve-secret", metavar="FILE", help="the broker's NAME.key_secret from rake-keygen: require CURVE keys")
    p.add_argument("--submitter-keys", metavar="DIR", help="directory of public keys (*.key) allowed to submit")
    p.add_argument("--worker-keys", metavar="DIR", help="directory of public keys (*.key) allowed to run jobs")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without keys (anyone who reaches it can run commands on the workers), and a non-loopback --http")
    p.add_argument("--rate", type=float, default=None, help="messages a second each peer may send (default 5000); excess is dropped")
    p.add_argument("--burst", type=int, default=None, help="messages a peer may send at once above --rate (default 10000)")
    p.add_argument("--heartbeat", type=float, default=None, metavar="SECONDS", help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("--http", metavar="HOST:PORT", default=None,
                   help="serve the live dashboard, /api/status and /metrics there (port 0 picks one; loopback unless --insecure)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="least important messages logged (default info)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None, help="text lines, or one JSON object per line")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors (--log-level error)")
    p.add_argument("--show-config", action="store_true", help="print the effective settings and where they came from")
    p.add_argument("--version", action="version", version=f"rake-broker {VERSION}")
    return p.parse_args(argv)


def settings(args: argparse.Namespace, config) -> dict:
    """Flag, then the [rake-broker] table of the configuration files, then the default."""
    level = "error" if args.quiet and args.log_level is None else args.log_level
    table = "rake-broker"
    return {s.name: s for s in (
        resolve("bind", args.bind, "--bind", config, table, "bind", DEFAULT_BIND),
        resolve("curve_secret", args.curve_secret, "--curve-secret", config, table, "curve_secret", None),
        resolve("submitter_keys", args.submitter_keys, "--submitter-keys", config, table, "submitter_keys", None),
        resolve("worker_keys", args.worker_keys, "--worker-keys", config, table, "worker_keys", None),
        resolve("rate", args.rate, "--rate", config, table, "rate", 5000),
        resolve("burst", args.burst, "--burst", config, table, "burst", 10000),
        resolve("log_level", level, "--log-level" if args.log_level else "-q", config, table, "log_level", "info"),
        resolve("log_format", args.log_format, "--log-format", config, table, "log_format", "text"),
        resolve("http", args.http, "--http", config, table, "http", None),
    )}


def server_curve(chosen: dict, insecure: bool, log) -> ServerCurve | None:
    """The CURVE setup asked for, None for none; refuses an unauthenticated network bind."""
    bind = chosen["bind"].value
    given = [chosen[k].value for k in ("curve_secret", "submitter_keys", "worker_keys")]
    if not any(given):
        if not is_local_endpoint(bind):
            if not insecure:
                raise ConfigError(f"refusing to bind {bind} without authentication: anyone who reaches it could run "
                                  "commands on the workers; give --curve-secret, --submitter-keys and --worker-keys "
                                  "(see rake-keygen), or --insecure")
            log.warning(f"{bind} is reachable from the network with no authentication (--insecure): "
                        "anyone who reaches it can run commands on the workers")
        return None
    if not all(given):
        raise ConfigError("CURVE needs all three of --curve-secret, --submitter-keys and --worker-keys")
    _, secret = read_secret(given[0])
    return ServerCurve(secret, KeyRing(given[1], given[2], log))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        chosen = settings(args, load_config())
    except ConfigError as e:
        print(f"rake-broker: {e}", file=sys.stderr)
        return EXIT_USAGE
    problem = setting_problem(chosen, args.insecure)
    if problem:   # before --show-config too: it shows what would run
        print(f"rake-broker: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.show_config:
        try:
            shown = list(chosen.values()) + timing_settings(args.heartbeat)
        except ValueError as e:
            print(f"rake-broker: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        return print_stdout("rake-broker", show(shown, load_config()))
    bind = chosen["bind"].value
    log = Log("rake-broker", chosen["log_level"].value, chosen["log_format"].value)
    dashboard = None
    try:
        timing = Timing.from_env(args.heartbeat)
        limiter = RateLimiter(chosen["rate"].value, chosen["burst"].value)
        curve = server_curve(chosen, args.insecure, log)
        dashboard = open_dashboard(chosen["http"].value, args.insecure, chosen["http"].source)
        loop = BrokerLoop(bind, timing, log, curve=curve, limiter=limiter, dashboard=dashboard,
                          watch_descriptors=True)
    except (ValueError, ConfigError, KeyFileError) as e:
        return _fail(log, str(e), EXIT_USAGE, dashboard)
    except zmq.ZMQError as e:
        # libzmq takes an unknown name for a network interface that is not there
        why = "no interface or host has that name" if e.errno == errno.ENODEV else e.strerror
        return _fail(log, f"cannot bind {bind}: {why}", 69, dashboard)
    except OSError as e:         # the dashboard's port
        return _fail(log, str(e), 69, dashboard)
    except RuntimeError as e:    # the authenticator could not start: never run open instead
        return _fail(log, str(e), 1, dashboard)
    log.debug(f"bound {loop.endpoint}; heartbeat {timing.heartbeat:g}s, liveness {timing.liveness}"
              f"{'; CURVE' if curve else ''}; rate {limiter.rate:g}/s, burst {limiter.burst:g}")
    return serve(loop, dashboard)


class _Stopped(BaseException):
    """SIGTERM or SIGINT while the endpoint was being written."""


def serve(loop: BrokerLoop, dashboard) -> int:
    """Announce where we listen, then route until SIGTERM or SIGINT (SIGHUP reloads keys)."""
    # Handlers first: a script that reads the endpoint and stops us at once must get a clean
    # stop (an ipc:// path removed), not the default SIGTERM death.
    announcing = True

    def stop(*_) -> None:
        loop.stop()
        if announcing:   # a write blocked on a reader that does not read is retried after a
            raise _Stopped   # handler that returns: the stop would wait for that reader
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    signal.signal(signal.SIGHUP, lambda *_: loop.reload_keys())
    # The first line: scripts and tests read the endpoint here. Nobody reading it (`| head -0`,
    # a full log disk) is no reason not to serve.
    try:
        problem = write_stdout(loop.endpoint + "\n" + (dashboard.url + "\n" if dashboard is not None else ""))
        announcing = False
    except _Stopped:
        loop.close()
        if dashboard is not None:
            dashboard.close()
        return 0
    if problem:
        loop.log.warning(f"cannot write the endpoint to stdout ({problem}); serving {loop.endpoint}")
    if dashboard is not None:
        dashboard.start()
    try:
        loop.run()
    finally:
        if dashboard is not None:
            dashboard.close()
    return 0

def _named(setting, key: str) -> str:
    """A flag as given; a config file's key as its other problems are named: `path:line: 'rake-broker.KEY'`."""
    if setting.source.startswith("-"):
        return setting.source
    try:
        with open(setting.source, encoding="utf-8", errors="replace") as f:
            line = line_of(f.read(), "rake-broker", key)
    except OSError:
        line = None
    return f"{setting.source}{f':{line}' if line else ''}: 'rake-broker.{key}'"


def setting_problem(chosen: dict, insecure: bool = False) -> str | None:
    """What is wrong with --bind, --rate, --burst or --http, naming the flag (or file) it came from."""
    bind, rate, burst = chosen["bind"], chosen["rate"], chosen["burst"]
    problem = endpoint_problem(bind.value, bind=True)
    if problem:
        return f"{bind.source} {problem}, got {bind.value!r}"
    if not 0 < rate.value <= 1e9:   # also false for nan
        return f"{rate.source} must be above 0 and at most 1e9 messages a second, got {rate.value!r}"
    if not 1 <= burst.value <= 1e9:
        return f"{burst.source} must be 1 or more messages, got {burst.value!r}"
    http = chosen["http"]
    if http.value is not None and not insecure:
        try:
            host, _ = parse_http_addr(http.value)
        except ValueError:
            return None   # open_dashboard says what is wrong with it
        if not is_loopback(host):
            return (f"{_named(http, 'http')} {http.value} is not a loopback address; the dashboard has no "
                    "authentication, so add --insecure to serve it there anyway")
    return None


def _fail(log, message: str, status: int, dashboard) -> int:
    log.error(message)
    if dashboard is not None:
        dashboard.close()
    return status


if __name__ == "__main__":   # as the installed program: entry's care for streams, locale and Ctrl-C
    from rake_common.entry import broker
    sys.exit(broker())
