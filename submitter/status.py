"""rake-status command line: ask the broker for STATUS and show the cluster, once or until interrupted."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time

import zmq

from protocol import DecodeError, Error, Status, StatusReply, decode, encode
from protocol.status import status_json
from protocol.version import VERSION
from rake_common.cli import Parser, write_stdout
from rake_common.config import ConfigError, load_config, resolve
from rake_common.endpoints import endpoint_problem
from rakeauth.client import KEY_ENV, SERVER_ENV, add_client_options, client_curve
from rakeauth.keys import KeyFileError
from submitter.link import Candidate, NoBroker, find_broker
from submitter.status_text import render

DEFAULT_BROKER = "tcp://127.0.0.1:6238"   # rake-broker's default --bind
EXIT_USAGE = 2
EXIT_NO_BROKER = 69
CLEAR = "\x1b[H\x1b[2J"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="rake-status", description="Show a rake cluster at a glance: workers and actions in flight.")
    p.add_argument("--broker", default=None,
                   help=f"broker endpoint (default: RAKE_BROKER, the config files' broker, else {DEFAULT_BROKER})")
    p.add_argument("--json", action="store_true", help="print the status as JSON (one object per line with --watch)")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
                   help="show it again every SECONDS (default 2) until interrupted")
    p.add_argument("--count", type=int, default=None, metavar="N", help="with --watch: stop after N reports")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the broker's answer (default 3)")
    add_client_options(p)
    p.add_argument("--version", action="version", version=f"rake-status {VERSION}")
    args = p.parse_args(argv)
    if args.watch is not None and not (0 < args.watch < 1e6):
        p.error(f"--watch must be a number of seconds above 0 and below 1e6, got {args.watch:g}")
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    if args.count is not None and args.watch is None:
        p.error("--count needs --watch (without it one report is shown)")
    if not (0 < args.timeout < 1e6):
        p.error(f"--timeout must be a number of seconds above 0 and below 1e6, got {args.timeout:g}")
    return args


def connection(args: argparse.Namespace):
    """(Candidate, CURVE keys or None) as rake-submit finds them: flag, environment, config files.

    Raises ConfigError or KeyFileError (usage errors)."""
    config = load_config()
    broker = resolve("broker", args.broker, "--broker", config, "", "broker", DEFAULT_BROKER, "RAKE_BROKER")
    key = resolve("curve_key", args.curve_key, "--curve-key", config, "", "curve_key", None, KEY_ENV)
    server = resolve("server_key", args.server_key, "--server-key", config, "", "server_key", None, SERVER_ENV)
    source = "the default" if broker.source == "default" else broker.source
    problem = endpoint_problem(broker.value)
    if problem:
        raise ConfigError(f"{source} {problem}, got {broker.value!r}")
    return Candidate(broker.value, source), client_curve(key.value, server.value, env={})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0 if args.watch else 130   # ^C is how a watch ends
    except BrokenPipeError:               # `rake-status --watch | head`: the reader is done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run(args: argparse.Namespace) -> int:
    try:
        candidate, curve = connection(args)
    except (ConfigError, KeyFileError) as e:
        _say(str(e))
        return EXIT_USAGE
    ctx = zmq.Context.instance()
    identity = b"Q" + os.urandom(8)   # "Q": a query; the broker registers it as nothing
    try:
        sock, chosen = find_broker(ctx, [candidate], identity, args.timeout, "", lambda s: None, curve,
                                   greeting=Status(), answers=(StatusReply,))
    except NoBroker:
        why = candidate.dead if candidate.dead not in (None, "no answer in time") else f"no answer within {args.timeout:g} s"
        _say(f"no status from a broker at {candidate.endpoint} (from {candidate.label}): {why}")
        return EXIT_NO_BROKER
    try:
        return watch(args, sock, candidate.endpoint, chosen.answer)
    except Unwritable as e:
        _say(f"cannot write to stdout: {e}")
        return 1
    finally:
        sock.close(linger=0)


def watch(args: argparse.Namespace, sock: zmq.Socket, endpoint: str, reply) -> int:
    shown = 0
    while True:
        if isinstance(reply, Error):
            _say(f"the broker at {endpoint} answered {reply.code}: {reply.message[:100]}")
            return EXIT_NO_BROKER
        show(args, reply, endpoint)
        shown += 1
        if args.watch is None or (args.count is not None and shown >= args.count):
            return 0
        time.sleep(args.watch)
        reply = ask(sock, args.timeout)
        while reply is None:   # a silent broker uses up --count too: `--count 5` always ends
            shown += 1
            if args.count is not None and shown >= args.count:
                _say(f"no answer from {endpoint} for {args.timeout:g} s")
                return EXIT_NO_BROKER
            _say(f"no answer from {endpoint} for {args.timeout:g} s; still asking")
            reply = ask(sock, args.timeout)


def ask(sock: zmq.Socket, timeout: float):
    """Send STATUS; the newest STATUS-REPLY (or ERROR) within `timeout`, else None."""
    try:
        sock.send_multipart(encode(Status()), zmq.NOBLOCK)
    except zmq.Again:
        pass   # the broker is away and our queue is full: wait for what is already asked
    deadline = time.monotonic() + timeout
    answer = None
    while answer is None and sock.poll(max(0.0, deadline - time.monotonic()) * 1000 + 1):
        while True:   # late answers to earlier asks may be queued: keep the newest
            try:
                msg, _ = decode(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            except DecodeError:
                continue
            if isinstance(msg, (StatusReply, Error)):
                answer = msg
        if time.monotonic() >= deadline:
            break
    return answer


def show(args: argparse.Namespace, reply: StatusReply, endpoint: str) -> None:
    if args.json:
        text = json.dumps(status_json(reply), ensure_ascii=False) + "\n"
    else:
        text = render(reply, endpoint)
        if args.watch is not None and sys.stdout is not None and sys.stdout.isatty():   # None: `>&-`
            text = CLEAR + text
        elif args.watch is not None:
            text += "\n"
    problem = write_stdout(text)
    if problem == os.strerror(errno.EPIPE):   # the reader is done (`| head`): main() ends quietly
        raise BrokenPipeError(errno.EPIPE, problem)
    if problem:
        raise Unwritable(problem)


class Unwritable(Exception):
    """What rake-status was asked for could not be written to stdout."""


def _say(message: str) -> None:
    print(f"rake-status: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":   # as the installed program: entry's care for streams, locale and Ctrl-C
    from rake_common.entry import status
    sys.exit(status())
