"""rake-submit command line: parse the Rakefile, find a broker (or embed one), run it."""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import socket
import sys
import tempfile

import zmq

from protocol.paths import printable, quote_text
from protocol.timing import Timing
from rake_common.cli import print_stdout
from rake_common.config import Config, ConfigError, load_config, show, timing_settings
from rake_common.endpoints import endpoint_problem
from rake_common.zmqio import ends_zmq
from submitter.arguments import parse_args
from submitter.config import broker_setting, for_display, submit_settings
from rakeauth.client import client_curve
from rakeauth.keys import KeyFileError
from submitter.core import EXIT_NO_WORKER, RunOptions
from submitter.brokerlink import SocketLink
from submitter.embedded import EmbeddedCluster
from submitter.link import Candidate, NoBroker, find_broker, how_to_start
from submitter.plan import print_plan
from submitter.rakefile import Rakefile, RakefileError, parse_rakefile
from submitter.report import Reporter
from submitter.interrupts import INTERRUPTS, Interrupted, ending, on_signal, wake_on_signals
from submitter.joblog import joblog_clash
from submitter.session import Session
from submitter.terminal import into_a_pipe, smart_terminal, use_color

EXIT_USAGE = 2
# A Rakefile larger than this is not one (`-f /dev/zero`, a disk image named by mistake):
# reading on would only end in a MemoryError. 100000 actions of 1 KiB each is 100 MiB.
MAX_RAKEFILE = 256 << 20


def read_capped(fh, most: int = MAX_RAKEFILE + 1) -> bytes:
    """Up to `most` bytes of `fh`, in pieces: read(most) asks for a buffer of that size at
    once, 256 MiB of address space for a Rakefile of three lines (a MemoryError under
    `ulimit -v` that make runs in)."""
    pieces, got = [], 0
    while got < most:
        piece = fh.read(min(1 << 20, most - got))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def load_rakefile(path: str, reporter: Reporter, named: bool = False) -> Rakefile | None:
    """`named`: given as the RAKEFILE argument, where a make user may have named a target."""
    shown = printable(path)   # one line, whatever bytes the name holds
    try:
        if path == "-":   # as make -f -: the Rakefile comes from standard input
            data, shown = read_capped(sys.stdin.buffer), "<stdin>"
        else:
            with open(path, "rb") as fh:
                data = read_capped(fh)
        if len(data) > MAX_RAKEFILE:
            reporter.error(f"{shown}: larger than {MAX_RAKEFILE >> 20} MiB: not a Rakefile")
            return None
    except (OSError, AttributeError) as e:   # AttributeError: no stdin at all
        # `rake-submit test`, as `make test`: say why that is no target.
        hint = (" (rake has no targets: RAKEFILE names the file to run)"
                if named and isinstance(e, FileNotFoundError) and "/" not in path and os.path.exists("Rakefile")
                else "")
        reporter.error(f"cannot read {shown}: {getattr(e, 'strerror', None) or 'no standard input'}{hint}")
        return None
    try:
        rakefile = parse_rakefile(data)
    except RakefileError as e:
        # The first 50 (a binary file given by mistake has an error on every line).
        reporter.output.write("err", e.format(shown).encode("utf-8", "replace") + b"\n", ours=True)
        return None
    for w in rakefile.warnings:
        reporter.output.write("err", f"{w.format(shown)} (warning)".encode("utf-8", "replace") + b"\n", ours=True)
    return rakefile


def broker_candidates(args, rakefile: Rakefile) -> list[Candidate]:
    """--broker, RAKE_BROKER, the config files, then the Rakefile's HOSTS; empty means embed a cluster."""
    chosen = args.settings["broker"]
    if chosen.value is not None:
        return [Candidate(chosen.value, chosen.source)]
    return [Candidate(h.endpoint, f"HOSTS, line {h.line}") for h in rakefile.hosts]


@ends_zmq
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config()
    except ConfigError as e:
        sys.stderr.write(f"rake-submit: {e}\n")
        return EXIT_USAGE
    args.settings = submit_settings(args, config)
    broker = args.settings["broker"]
    problem = broker.value is not None and endpoint_problem(broker.value)
    if problem:
        sys.stderr.write(f"rake-submit: {broker.source} {problem}, got {broker.value!r}\n")
        return EXIT_USAGE
    for name in ("jobs", "timeout", "connect_timeout", "worker_wait", "broker_wait"):
        setattr(args, name, args.settings[name].value)
    reporter = None
    try:
        if args.show_config:
            return show_config(args, config)
        reporter = make_reporter(args)
        try:
            status = run(args, reporter)
        except (OSError, zmq.ZMQError) as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            reporter.error(out_of_files(e))
            status = 1
        reporter.close()   # everything written: only then is a write error known
        return 1 if status == 0 and reporter.unwritable else status
    except KeyboardInterrupt:
        return 130
    except Interrupted as e:
        return e.status
    finally:
        if reporter is not None:
            try:
                reporter.close()
            except Interrupted:   # a second signal while a reader holds up the output: leave
                pass
        ending()   # a signal from now on, as Python ends its threads: no traceback


# Descriptors rake-submit needs for itself with its embedded cluster, before any local action
# (each of those takes about four more): under this, libzmq aborts the process (SIGABRT)
# when it cannot make one, or Python raises out of a constructor.
MIN_OPEN_FILES = 64


def out_of_files(e: Exception) -> str:
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    return (f"out of open files ({getattr(e, 'strerror', None) or e}; ulimit -n is {shown}): "
            f"rake-submit needs about {MIN_OPEN_FILES}, and 4 more per local action it runs at once")


def make_reporter(args: argparse.Namespace, env=os.environ) -> Reporter:
    err = sys.stderr.buffer if sys.stderr else None
    smart = err is not None and smart_terminal(err, env)
    return Reporter(verbose=args.verbose, quiet=args.quiet, status=smart and not into_a_pipe(sys.stdout),
                    color=use_color(args.settings["color"].value, smart), threaded=True)


def show_config(args: argparse.Namespace, config: Config) -> int:
    """--show-config: print each effective value and where it came from; run nothing."""
    if args.directory and os.path.isdir(args.directory):
        os.chdir(args.directory)
    rakefile = None
    try:
        with open(args.file or args.rakefile or "Rakefile", "rb") as fh:
            data = read_capped(fh)
        rakefile = parse_rakefile(data) if len(data) <= MAX_RAKEFILE else None
    except (OSError, RakefileError):
        pass   # no (valid) Rakefile here: no HOSTS to show
    settings = dict(args.settings, broker=broker_setting(args.settings["broker"], rakefile))
    try:
        shown = [for_display(v) for v in settings.values()] + timing_settings(args.heartbeat)
    except ValueError as e:   # a heartbeat a run would refuse
        print(f"rake: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return print_stdout("rake-submit", show(shown, config))


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    if args.directory:
        try:
            os.chdir(args.directory)
        except OSError as e:
            reporter.error(f"cannot change to {printable(args.directory)}: {e.strerror}")
            return EXIT_USAGE
    try:
        os.getcwd()
    except OSError as e:   # removed under us: every relative name would fail
        reporter.error(f"cannot use the current directory: {e.strerror} (was it removed?)")
        return EXIT_USAGE
    path = args.file or args.rakefile or "Rakefile"
    rakefile = load_rakefile(path, reporter, named=bool(args.rakefile))
    if rakefile is None:
        return EXIT_USAGE
    if args.dry_run:
        print_plan(rakefile, os.getcwd(), reporter, broker_candidates(args, rakefile))
        return 0
    try:   # before the job log is opened: a usage error must not empty an existing one
        timing = Timing.from_env(args.heartbeat)
    except ValueError as e:
        reporter.error(str(e))
        return EXIT_USAGE
    if args.joblog:
        requires = [r.path for aset in rakefile.actionsets for a in aset.actions for r in a.requires]
        clash = joblog_clash(args.joblog, path, requires)
        if clash:
            reporter.error(clash)
            return EXIT_USAGE
        if not reporter.open_joblog(args.joblog):
            return EXIT_USAGE
    # SIGHUP too: a closed terminal or a dropped ssh must cancel and clean up as Ctrl-C does;
    # but not under nohup, which asked for it to be ignored (as make does). Ctrl-C and Ctrl-\
    # (SIGQUIT) likewise, unless ignored: a script's `&` job has them ignored, and make keeps them so.
    if rakefile.has_remote:   # before libzmq, which aborts the process when it runs out
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and soft < MIN_OPEN_FILES:
            reporter.error(out_of_files(OSError(errno.EMFILE, os.strerror(errno.EMFILE))))
            return 1
    for sig in INTERRUPTS:
        if sig == signal.SIGTERM or signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, on_signal)
    wake_on_signals()
    options = RunOptions(jobs=None if args.jobs == math.inf else args.jobs, keep_going=args.keep_going, timeout=args.timeout,
                         worker_wait=args.worker_wait, window=timing.expiry,
                         broker_wait=args.broker_wait)
    if not rakefile.actionsets or not any(a.actions for a in rakefile.actionsets):
        reporter.note("nothing to do")
        return 0
    reporter.begin(rakefile)
    if not rakefile.has_remote:
        session = Session(rakefile, os.getcwd(), options, reporter, timing)
        return finish(session, session.run(), reporter)
    return run_with_broker(args, rakefile, options, reporter, timing)


def finish(session: Session, status: int, reporter: Reporter) -> int:
    """After a run: the summary line, with the bytes that crossed the wire."""
    reporter.summary(session.traffic.sent_bytes, session.traffic.received_bytes)
    return status


def run_with_broker(args, rakefile: Rakefile, options: RunOptions, reporter: Reporter,
                    timing: Timing) -> int:
    ctx = zmq.Context.instance()
    candidates = broker_candidates(args, rakefile)
    identity = b"S" + os.urandom(8)
    name = f"{socket.gethostname()}:{os.getpid()}"
    try:   # checked on the embedded cluster too, which needs none: a bad pair is a usage error
        keys = args.settings
        curve = client_curve(keys["curve_key"].value, keys["server_key"].value, env={})
    except KeyFileError as e:
        reporter.error(str(e))
        return EXIT_USAGE
    if not candidates:
        try:
            cluster = EmbeddedCluster(ctx, timing)
        except OSError as e:   # the temp dir: full, read-only, a name too long
            reporter.error(f"cannot start the embedded local cluster: {e.strerror or e} "
                           f"(in TMPDIR {quote_text(tempfile.gettempdir())})")
            return 1
        for warning in cluster.warnings:   # a hardened /tmp, say
            reporter.warning(warning)
        try:   # closed however the run ends: it kills what still runs and removes the sandboxes
            link, answer = cluster.connect(identity, name, args.connect_timeout)
            return run_session(args, rakefile, options, reporter, timing, link, identity, answer, name, cluster)
        finally:
            cluster.close()
    try:
        sock, chosen = find_broker(ctx, candidates, identity, args.connect_timeout, name,
                                   reporter.warning, curve, heartbeat=timing.heartbeat)
    except NoBroker as e:
        if e.refused:   # reachable, but not for us: starting a broker is not the advice
            reporter.error(f"every broker refused this rake-submit (tried {e}): see why above")
            return EXIT_NO_WORKER
        reporter.error(f"no broker reachable (tried {e}); {how_to_start(candidates[0])}")
        return EXIT_NO_WORKER
    return run_session(args, rakefile, options, reporter, timing, SocketLink(sock), chosen.identity, chosen.answer,
                       name, where=chosen)


def run_session(args, rakefile: Rakefile, options: RunOptions, reporter: Reporter, timing: Timing,
                link, identity: bytes, answer, name: str, cluster=None, where: Candidate | None = None) -> int:
    """Run the Rakefile through the broker on `link` (`where`, None for the embedded cluster),
    then say goodbye to it."""
    try:
        session = Session(rakefile, os.getcwd(), options, reporter, timing, link, identity.hex(),
                          answer, name, cluster)
        session.view.placement = args.placement
        status = session.run()
        if where is not None and session.core is not None and session.core.gave_up_waiting:
            reporter.error(f"no worker joined broker {where.endpoint} (from {where.label}) in "
                           f"{options.worker_wait:g}s: start one with 'rake-worker --broker {where.endpoint}'")
        return finish(session, status, reporter)
    finally:
        link.close()


if __name__ == "__main__":   # as the installed program: entry's care for streams, locale and Ctrl-C
    from rake_common.entry import submit
    sys.exit(submit())
