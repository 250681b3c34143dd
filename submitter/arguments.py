"""rake-submit's command line: its flags, checked, into an argparse Namespace."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

from protocol.version import VERSION
from rake_common.cli import Parser
from rakeauth.client import add_client_options


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="rake-submit", description="Run a Rakefile across a rake cluster.",
                                epilog="Settings also come from RAKE_BROKER, RAKE_HEARTBEAT, RAKE_LIVENESS, NO_COLOR, "
                                       "FORCE_COLOR, ~/.config/rake/config.toml and /etc/rake/config.toml; "
                                       "see --show-config.")
    p.add_argument("rakefile", nargs="?", default=None, help="the Rakefile (default ./Rakefile)")
    run = p.add_argument_group("what to run")
    run.add_argument("-f", "--file", dest="file", metavar="FILE", action="append", default=None, help="read FILE as the Rakefile (- for standard input)")
    run.add_argument("-C", "--directory", dest="directory", metavar="DIR", action="append", default=None,
                     help="change to DIR first (several: each relative to the one before, as in make)")
    run.add_argument("-j", "--jobs", type=int, metavar="N", default=None,
                     help="at most N actions at once (default: the cluster's slots; a bare -j: no limit, as in make)")
    run.add_argument(UNLIMITED, dest="jobs", action="store_const", const=math.inf, help=argparse.SUPPRESS)
    run.add_argument("-k", "--keep-going", action="store_true", help="start the rest of a failing actionset anyway")
    run.add_argument("-n", "--dry-run", action="store_true", help="print the plan and the files to ship; run nothing")
    run.add_argument("--timeout", type=float, metavar="SECONDS", default=None, help="kill a remote action after SECONDS")
    _output_flags(p.add_argument_group("output"))
    _cluster_flags(p.add_argument_group("cluster"))
    p.add_argument("--placement", choices=("cost", "round-robin", "random"), default="cost",
                   help=argparse.SUPPRESS)   # load-blind baselines, for bench/ only
    p.add_argument("--version", action="version", version=f"rake-submit {VERSION}")
    args = p.parse_args(without_bare_jobs(sys.argv[1:] if argv is None else argv))
    if args.file and len(args.file) > 1:   # make reads each; a run of rake is one Rakefile's actionsets
        p.error(f"-f given {len(args.file)} times ({', '.join(args.file)}): rake reads one Rakefile")
    args.file = args.file[0] if args.file else None
    if args.rakefile and args.file:
        p.error("give the Rakefile either as an argument or with -f, not both")
    for value, flag in ((args.file, "-f"), (args.rakefile, "RAKEFILE"), (args.joblog, "--joblog"),
                        *((d, "-C") for d in args.directory or ())):
        if value == "":   # an unset "$RF" must not quietly mean ./Rakefile, or here
            p.error(f"{flag} must not be empty")
    args.directory = os.path.join(*args.directory) if args.directory else None
    if args.jobs is not None and args.jobs < 1:
        p.error(f"-j must be at least 1, got {args.jobs}")
    for name in ("timeout", "connect_timeout", "worker_wait", "broker_wait"):
        value = getattr(args, name)
        if value is not None and not (0 < value < 1e9):
            p.error(f"--{name.replace('_', '-')} must be a number of seconds above 0 and below 1e9, got {value:g}")
    return args


UNLIMITED = "--jobs-unlimited"   # what a bare -j becomes: jobs = infinity, over any config file's


def without_bare_jobs(argv: list[str]) -> list[str]:
    """make's `-j` with no number means no limit (the cluster's slots are one all the same):
    unless what follows looks like a number (`-j 4`, and `-j 2.5`, which argparse then refuses
    as one), it becomes UNLIMITED, which wins over a config file's `jobs` and, like any flag,
    over an earlier -j. `-kj` is `-k` and a bare -j."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        following = argv[i + 1] if i + 1 < len(argv) else None
        # An empty value (`-j "$N"`, N unset) is -j's, refused as a number: taken for a bare
        # -j, it would be refused as an empty RAKEFILE instead.
        bare = following is None or not re.fullmatch(r"|[+-]?[0-9][0-9.eExX_+-]*", following)
        if arg in ("-j", "--jobs") and bare:
            out.append(UNLIMITED)
        elif re.fullmatch(r"-[a-zA-Z]+j", arg) and set(arg[1:-1]) <= FLAGS and bare:
            out += [arg[:-1], UNLIMITED]   # flags that take no value, then a bare j
        else:
            out.append(arg)
    return out


FLAGS = set("knvq")   # rake-submit's one-letter flags that take no value


def _output_flags(g) -> None:
    loudness = g.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="say which worker runs each action")
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="only action output and errors: no status line, no summary")
    g.add_argument("--color", choices=("auto", "always", "never"), default=None,
                   help="colour FAILED lines and the summary (default auto: on a terminal, unless NO_COLOR; FORCE_COLOR forces it)")
    g.add_argument("--joblog", metavar="FILE", default=None, help="log each finished action to FILE (GNU parallel's columns)")
    g.add_argument("--show-config", action="store_true", help="print the effective settings and where they came from")


def _cluster_flags(g) -> None:
    g.add_argument("--broker", metavar="ENDPOINT", default=None,
                   help="e.g. tcp://host:6238 (before RAKE_BROKER, config files and the Rakefile's HOSTS)")
    g.add_argument("--connect-timeout", type=float, metavar="SECONDS", default=None, help="wait for a broker (default 3)")
    g.add_argument("--worker-wait", type=float, metavar="SECONDS", default=None, help="wait for a worker to appear (default 10)")
    g.add_argument("--broker-wait", type=float, metavar="SECONDS", default=None, help="wait for a silent broker (default 60)")
    g.add_argument("--heartbeat", type=float, metavar="SECONDS", default=None, help="heartbeat interval (default 1, or RAKE_HEARTBEAT)")
    add_client_options(g)
