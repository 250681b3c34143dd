"""rake-submit command line: parse the Rakefile, find a broker (or embed one), run it."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sys

import zmq

from protocol import Bye, encode
from protocol.timing import Timing
from protocol.version import VERSION
from rakeauth.client import add_client_options, client_curve
from rakeauth.keys import KeyFileError
from submitter.core import EXIT_NO_WORKER, RunOptions
from submitter.embedded import EmbeddedCluster
from submitter.link import Candidate, NoBroker, find_broker
from submitter.plan import print_plan
from submitter.rakefile import Rakefile, RakefileError, parse_rakefile
from submitter.report import Reporter
from submitter.session import Interrupted, Session

EXIT_USAGE = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-submit", description="Run a Rakefile across a rake cluster.")
    p.add_argument("rakefile", nargs="?", default=None, help="the Rakefile (default ./Rakefile)")
    p.add_argument("-f", "--file", dest="file", default=None, help="read FILE as the Rakefile")
    p.add_argument("-C", "--directory", dest="directory", default=None, help="change to DIR first")
    p.add_argument("-j", "--jobs", type=int, default=None, help="at most N actions at once (default: cluster slots)")
    p.add_argument("-k", "--keep-going", action="store_true", help="start the rest of a failing actionset anyway")
    p.add_argument("-n", "--dry-run", action="store_true", help="print the plan, run nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="say where each action runs")
    p.add_argument("-q", "--quiet", action="store_true", help="print only action output and errors")
    p.add_argument("--broker", default=None, help="broker endpoint, e.g. tcp://host:6238 (overrides RAKE_BROKER and HOSTS)")
    p.add_argument("--timeout", type=float, default=None, help="kill a remote action after SECONDS")
    p.add_argument("--connect-timeout", type=float, default=3.0, help="seconds to wait for a broker (default 3)")
    p.add_argument("--worker-wait", type=float, default=10.0, help="seconds to wait for a worker to appear (default 10)")
    p.add_argument("--broker-wait", type=float, default=60.0, help="seconds a silent broker is waited for (default 60)")
    p.add_argument("--placement", choices=("cost", "round-robin", "random"), default="cost",
                   help=argparse.SUPPRESS)   # load-blind baselines, for bench/ only
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    add_client_options(p)
    p.add_argument("--version", action="version", version=f"rake-submit {VERSION}")
    args = p.parse_args(argv)
    if args.rakefile and args.file:
        p.error("give the Rakefile either as an argument or with -f, not both")
    if args.jobs is not None and args.jobs < 1:
        p.error(f"-j must be at least 1, got {args.jobs}")
    for name in ("timeout", "connect_timeout", "worker_wait", "broker_wait"):
        value = getattr(args, name)
        if value is not None and not (0 < value < 1e9):
            p.error(f"--{name.replace('_', '-')} must be a positive number of seconds")
    return args


def load_rakefile(path: str, reporter: Reporter) -> Rakefile | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        reporter.error(f"cannot read {path}: {e.strerror}")
        return None
    try:
        rakefile = parse_rakefile(data)
    except RakefileError as e:
        for problem in e.problems:
            reporter.err.write(problem.format(path).encode("utf-8", "replace") + b"\n")
        reporter.err.flush()
        return None
    for w in rakefile.warnings:
        reporter.err.write(f"{w.format(path)} (warning)".encode("utf-8", "replace") + b"\n")
    return rakefile


def broker_candidates(args, rakefile: Rakefile) -> list[Candidate]:
    """--broker, then RAKE_BROKER, then the Rakefile's HOSTS; empty means embed a cluster."""
    if args.broker:
        return [Candidate(args.broker, "--broker")]
    if os.environ.get("RAKE_BROKER"):
        return [Candidate(os.environ["RAKE_BROKER"], "RAKE_BROKER")]
    return [Candidate(h.endpoint, f"HOSTS, line {h.line}") for h in rakefile.hosts]


def _raise_interrupted(signum, frame):
    raise Interrupted(128 + signum)


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        return 130
    except Interrupted as e:
        return e.status


def run(args: argparse.Namespace) -> int:
    reporter = Reporter(verbose=args.verbose, quiet=args.quiet)
    if args.directory:
        try:
            os.chdir(args.directory)
        except OSError as e:
            reporter.error(f"cannot change to {args.directory}: {e.strerror}")
            return EXIT_USAGE
    path = args.file or args.rakefile or "Rakefile"
    rakefile = load_rakefile(path, reporter)
    if rakefile is None:
        return EXIT_USAGE
    if args.dry_run:
        print_plan(rakefile, os.getcwd(), reporter)
        return 0
    try:
        timing = Timing.from_env(args.heartbeat)
    except ValueError as e:
        reporter.error(str(e))
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _raise_interrupted)
    options = RunOptions(jobs=args.jobs, keep_going=args.keep_going, timeout=args.timeout,
                         worker_wait=args.worker_wait, window=timing.expiry,
                         broker_wait=args.broker_wait)
    if not rakefile.actionsets or not any(a.actions for a in rakefile.actionsets):
        reporter.note("nothing to do")
        return 0
    if not rakefile.has_remote:
        return Session(rakefile, os.getcwd(), options, reporter, timing).run()
    return run_with_broker(args, rakefile, options, reporter, timing)


def run_with_broker(args, rakefile: Rakefile, options: RunOptions, reporter: Reporter,
                    timing: Timing) -> int:
    ctx = zmq.Context.instance()
    candidates = broker_candidates(args, rakefile)
    cluster = curve = None
    try:
        curve = client_curve(args.curve_key, args.server_key) if candidates else None
    except KeyFileError as e:
        reporter.error(str(e))
        return EXIT_USAGE
    if not candidates:
        cluster = EmbeddedCluster(ctx, timing)
        candidates = [Candidate(cluster.endpoint, "embedded local cluster")]
    identity = b"S" + secrets.token_bytes(8)
    name = f"{socket.gethostname()}:{os.getpid()}"
    try:
        sock, chosen = find_broker(ctx, candidates, identity, args.connect_timeout, name,
                                   reporter.warning, curve)
    except NoBroker as e:
        reporter.error(f"no broker reachable (tried {e}); start one with 'rake-broker' "
                       "(README: 'Running a cluster on a network') and workers with 'rake-worker --broker tcp://HOST:6238', or drop HOSTS to use the embedded local cluster")
        if cluster:
            cluster.close()
        return EXIT_NO_WORKER
    try:
        session = Session(rakefile, os.getcwd(), options, reporter, timing, sock, identity.hex(),
                          chosen.answer, name)
        session.view.placement = args.placement
        return session.run()
    finally:
        try:
            sock.send_multipart(encode(Bye(reason="run over")), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the broker will notice our silence instead
        sock.close(linger=200)
        if cluster:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
