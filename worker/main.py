"""rake-worker command line: connect to a broker and run jobs until signalled."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys

from protocol.timing import Timing
from protocol.version import VERSION
from worker import limits as job_limits
from worker.loop import WorkerLoop
from worker.workdir import WorkdirBusy, claim, fresh_workdir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rake-worker", description="Run rake jobs sent through a broker.")
    p.add_argument("--broker", default=os.environ.get("RAKE_BROKER") or "tcp://127.0.0.1:6238",
                   help="broker endpoint (default RAKE_BROKER, else tcp://127.0.0.1:6238)")
    p.add_argument("-j", "--slots", type=int, default=os.cpu_count() or 1, help="jobs run at once (default: CPU count)")
    p.add_argument("--name", default=socket.gethostname(), help="name shown in tables and reports (default: host name)")
    p.add_argument("--workdir", default=None, help="where sandboxes live (default: a new temporary directory, removed at exit)")
    p.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("--cache-dir", default=None,
                   help="blob cache kept between runs (default WORKDIR/cache with --workdir, else ~/.cache/rake-worker/NAME)")
    p.add_argument("--cache-size", type=int, default=4096, help="cache limit in MiB (default 4096)")
    p.add_argument("--isolate", choices=("auto", "pidns", "none"), default="auto",
                   help="run actions in a PID namespace that dies with the worker (auto: where allowed)")
    job_limits.add_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors")
    p.add_argument("--version", action="version", version=f"rake-worker {VERSION}")
    args = p.parse_args(argv)
    if not 1 <= args.slots <= 4096:
        p.error(f"--slots must be 1..4096, got {args.slots}")
    if not 1 <= len(args.name) <= 256:
        p.error("--name must be 1..256 characters")
    if not args.broker.startswith(("tcp://", "ipc://", "inproc://")):
        p.error(f"--broker must be an endpoint such as tcp://host:6238, got {args.broker!r}")
    try:
        args.limits = job_limits.from_args(args)
    except ValueError as e:
        p.error(str(e))
    return args


def cache_dir(args: argparse.Namespace) -> str | None:
    """None: inside the workdir (the loop's default)."""
    if args.cache_dir or args.workdir:
        return args.cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rake-worker", args.name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"rake-worker: {s}", file=sys.stderr, flush=True))
    try:
        timing = Timing.from_env(args.heartbeat)
    except ValueError as e:
        print(f"rake-worker: {e}", file=sys.stderr)
        return 2
    own_dir = args.workdir is None
    try:
        workdir = fresh_workdir() if own_dir else args.workdir
        claim(workdir)
    except (OSError, WorkdirBusy) as e:
        print(f"rake-worker: {e}", file=sys.stderr)
        return 1
    try:
        if own_dir and args.limits.uid is not None:
            os.chmod(workdir, 0o711)   # the action user passes through it to its sandbox
        problem = job_limits.unreachable(workdir, args.limits)
        if problem:
            print(f"rake-worker: --user: {problem}", file=sys.stderr)
            return 2
        loop = WorkerLoop(args.broker, args.name, socket.gethostname(), args.slots, workdir, timing,
                          log, isolate=args.isolate, cache_dir=cache_dir(args),
                          cache_limit=args.cache_size << 20, limits=args.limits)
        for warning in job_limits.warnings(args.limits):
            log(f"warning: {warning}")
        # First SIGTERM/SIGINT drains, a second one kills the running actions and leaves.
        signal.signal(signal.SIGTERM, lambda *_: loop.request_stop(hard=loop.stop_requested > 0))
        signal.signal(signal.SIGINT, lambda *_: loop.request_stop(hard=loop.stop_requested > 0))
        log(f"{args.name}: {args.slots} slots, broker {args.broker}, workdir {workdir}")
        loop.run()
        if loop.failed:
            return 1
    except OSError as e:
        print(f"rake-worker: {e}", file=sys.stderr)
        return 1
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
