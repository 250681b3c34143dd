"""rake-worker command line: connect to a broker and run jobs until signalled."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import signal
import socket
import sys

from protocol.timing import Timing
from protocol.version import VERSION
from rake_common.cli import Parser, print_stdout
from rake_common.config import (LOG_FORMATS, LOG_LEVELS, ConfigError, Setting, home_dir, load_config, resolve, show,
                                 timing_settings, usable_cpus)
from rake_common.endpoints import endpoint_problem
from rake_common.zmqio import ends_zmq
from rake_common.logsetup import Log
from rake_common.tree import remove_tree
from rakeauth.client import KEY_ENV, SERVER_ENV, add_client_options, client_curve
from rakeauth.keys import KeyFileError
from worker import limits as job_limits
from worker.loop import WorkerLoop
from worker.workdir import WorkdirBusy, claim, fresh_workdir, noexec_warning


DEFAULT_BROKER = "tcp://127.0.0.1:6238"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="rake-worker", description="Run rake jobs sent through a broker.")
    p.add_argument("--broker", default=None,
                   help=f"broker endpoint (default RAKE_BROKER, the config files, else {DEFAULT_BROKER})")
    p.add_argument("-j", "--slots", type=int, default=None, help="jobs run at once (default: the CPUs it may run on: taskset, a container's cpuset)")
    p.add_argument("--name", default=None, help="name shown in tables and reports (default: host name)")
    p.add_argument("--workdir", default=None, help="where sandboxes live (default: a new temporary directory, removed at exit)")
    p.add_argument("--heartbeat", type=float, default=None, metavar="SECONDS", help="heartbeat interval in seconds (default 1, or RAKE_HEARTBEAT)")
    p.add_argument("--cache-dir", default=None,
                   help="blob cache kept between runs (default WORKDIR/cache with --workdir, else $XDG_CACHE_HOME or ~/.cache, /rake-worker/NAME)")
    p.add_argument("--cache-size", type=int, default=None, metavar="MIB", help="cache limit in MiB (default 4096)")
    p.add_argument("--isolate", choices=("auto", "pidns", "none"), default=None,
                   help="run actions in a PID namespace that dies with the worker (auto: where allowed)")
    add_client_options(p)
    job_limits.add_arguments(p)
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="least important messages logged (default info)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None, help="text lines, or one JSON object per line")
    p.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors (--log-level error)")
    p.add_argument("--show-config", action="store_true", help="print the effective settings and where they came from")
    p.add_argument("--version", action="version", version=f"rake-worker {VERSION}")
    args = p.parse_args(argv)
    try:
        args.config = load_config()
    except ConfigError as e:
        print(f"rake-worker: {e}", file=sys.stderr)
        sys.exit(2)
    args.settings = settings(args, args.config)
    for s in args.settings.values():
        setattr(args, s.name, s.value)
    check_values(p, args)
    return args


def check_values(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 naming the setting (and where it came from) that is out of range."""
    if not 1 <= args.slots <= 4096:
        p.error(f"--slots must be 1..4096, got {args.slots}")
    if not 1 <= args.cache_size <= 1 << 30:
        p.error(f"--cache-size must be 1..{1 << 30} MiB, got {args.cache_size}")
    if not 1 <= len(args.name) <= 256:
        p.error("--name must be 1..256 characters")
    if not _utf8(args.name):
        if args.settings["name"].source != "default":
            p.error(f"--name must be UTF-8 text, got {args.name.encode('utf-8', 'surrogateescape')!r}")
        args.name = args.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    for flag in ("workdir", "cache_dir"):   # '' (an unset "$WD") must not mean "here"
        if getattr(args, flag) == "":
            p.error(f"--{flag.replace('_', '-')} must not be empty")
    problem = endpoint_problem(args.broker)
    if problem:
        p.error(f"{args.settings['broker'].source} {problem}, got {args.broker!r}")
    try:
        args.limits = job_limits.from_args(args)
    except ValueError as e:
        p.error(str(e))


def settings(args: argparse.Namespace, config) -> dict:
    """Flag, then RAKE_BROKER (broker only), then [rake-worker] of the config files, then the default."""
    level = "error" if args.quiet and args.log_level is None else args.log_level
    top = config.get("", "broker")   # a machine's one `broker = ...` serves its worker too
    broker_default, broker_source = (top[0], top[1]) if top else (DEFAULT_BROKER, "default")
    found = [
        resolve("broker", args.broker, "--broker", config, "rake-worker", "broker", broker_default, "RAKE_BROKER"),
        resolve("slots", args.slots, "--slots", config, "rake-worker", "slots", usable_cpus()),
        resolve("name", args.name, "--name", config, "rake-worker", "name", socket.gethostname()),
        resolve("workdir", args.workdir, "--workdir", config, "rake-worker", "workdir", None),
        resolve("cache_dir", args.cache_dir, "--cache-dir", config, "rake-worker", "cache_dir", None),
        resolve("cache_size", args.cache_size, "--cache-size", config, "rake-worker", "cache_size", 4096),
        resolve("isolate", args.isolate, "--isolate", config, "rake-worker", "isolate", "auto"),
        resolve("log_level", level, "--log-level" if args.log_level else "-q", config, "rake-worker", "log_level", "info"),
        resolve("log_format", args.log_format, "--log-format", config, "rake-worker", "log_format", "text"),
        resolve("curve_key", args.curve_key, "--curve-key", config, "rake-worker", "curve_key", None, KEY_ENV),
        resolve("server_key", args.server_key, "--server-key", config, "rake-worker", "server_key", None, SERVER_ENV),
    ]
    if found[0].source == "default" and top:
        found[0] = dataclasses.replace(found[0], source=broker_source)
    return {s.name: s for s in found}


def shown_settings(args: argparse.Namespace) -> list[Setting]:
    """--show-config: the settings with the directories the worker would really use, the
    heartbeat, and the limits (flags only: a value other than the default came from one)."""
    found = dict(args.settings)
    if args.workdir is None:
        found["workdir"] = Setting("workdir", "(a new directory under TMPDIR)", "default")
    if args.cache_dir is None:
        try:
            found["cache_dir"] = Setting("cache_dir", cache_dir(args) or "(inside the workdir)", "default")
        except NoHome as e:
            found["cache_dir"] = Setting("cache_dir", f"(none: {e})", "default")
    limits = [Setting(name, getattr(args, name) if getattr(args, name) != "" else None,
                      "--" + name.replace("_", "-") if getattr(args, name) != default else "default")
              for name, default in job_limits.DEFAULT_FLAGS.items()]
    return list(found.values()) + timing_settings(args.heartbeat) + limits


def cache_dir(args: argparse.Namespace) -> str | None:
    """None: inside the workdir (the loop's default)."""
    if args.cache_dir or args.workdir:
        return os.path.abspath(args.cache_dir) if args.cache_dir else None
    base = os.environ.get("XDG_CACHE_HOME") or (home_dir() and os.path.join(home_dir(), ".cache"))
    if not base:   # checked by cache_problem()
        raise NoHome("there is no home directory (no HOME, no passwd entry) for the default")
    return os.path.join(base, "rake-worker", args.name)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:   # bytes that were not UTF-8, from the command line or the host name
        return False
    return True


class NoHome(OSError):
    """No home directory for the default cache directory."""


def cache_problem(args: argparse.Namespace) -> str | None:
    """Why the cache directory cannot be made or written, naming where its path came from."""
    path = None
    try:
        path = cache_dir(args)
        if path is not None:
            os.makedirs(path, mode=0o700, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):   # a read-only mount, say
                code = errno.EROFS if _read_only(path) else errno.EACCES
                raise PermissionError(code, os.strerror(code))
        return None
    except OSError as e:
        source = "--cache-dir" if args.cache_dir else "the default, under $XDG_CACHE_HOME or ~/.cache"
        if path is None:
            return f"cannot make a cache directory: {e}; give --cache-dir or --workdir"
        hint = "" if args.cache_dir else "; give --cache-dir or --workdir"
        return f"cannot use the cache directory {path} ({source}{hint}): {e.strerror or e}"


def _read_only(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def take_workdir(args: argparse.Namespace, log: Log) -> tuple[str | None, int]:
    """(the claimed working directory, 0), or (None, the exit status) after saying why not."""
    own_dir = args.workdir is None
    try:
        # Absolute: actions start in sandboxes under it from the spawner, whose cwd is not ours.
        workdir = fresh_workdir() if own_dir else os.path.abspath(args.workdir)
        new = own_dir or not os.path.exists(workdir)
        claim(workdir)
        if new and args.limits.uid is not None:   # one we made: the action user passes
            os.chmod(workdir, 0o711)               # through it to its sandbox
        elif args.limits.uid is not None and os.stat(workdir).st_mode & 0o044:   # given: not ours to change
            log.warning(f"--workdir {workdir} is readable by others: actions run as --user {args.limits.user} "
                        f"can list its job directories (chmod 711 it)")
        warning = noexec_warning(workdir, "give --workdir on another filesystem")
        if warning:
            log.warning(warning)
        return workdir, 0
    except WorkdirBusy as e:
        log.error(str(e))
        return None, 1
    except OSError as e:   # given: the user's to fix (usage); our own under /tmp: the system's
        source = args.settings["workdir"].source   # "--workdir", or the config file it came from
        where = ("a working directory in the system's temp dir" if own_dir else f"--workdir {args.workdir}"
                 if source == "--workdir" else f"workdir {args.workdir} (from {source})")
        log.error(f"cannot use {where}: {e.strerror or e}")
        return None, 1 if own_dir else 2


@ends_zmq
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.show_config:
        try:
            shown = shown_settings(args)
        except ValueError as e:   # a heartbeat a run would refuse
            print(f"rake-worker: error: {e}", file=sys.stderr)
            return 2
        return print_stdout("rake-worker", show(shown, args.config))
    log = Log("rake-worker", args.log_level, args.log_format)
    try:
        timing = Timing.from_env(args.heartbeat)
        curve = client_curve(args.curve_key, args.server_key, env={})
    except (ValueError, KeyFileError) as e:
        log.error(str(e))
        return 2
    problem = cache_problem(args)
    if problem:
        log.error(problem)
        return 2
    # From here a stop must not kill us by the signal's default: the working directory made
    # next would stay behind in TMPDIR. One asked for while starting up drains at once.
    early: list[int] = []
    for sig in stop_signals():
        signal.signal(sig, lambda number, _: early.append(number))
    workdir, status = take_workdir(args, log)
    if workdir is None:
        return status
    try:
        return serve(args, log, workdir, timing, curve, early)
    except OSError as e:
        log.error(str(e))
        return 1
    finally:
        if args.workdir is None:   # our own
            remove_tree(workdir)


# Open files a worker needs: its sockets, cache and spawner, and for each slot its pooled job
# directory and a running action's pipes and files (about 2 each, measured; 4 leaves room).
BASE_FILES, FILES_PER_SLOT = 64, 4


def few_open_files(slots: int) -> list[str]:
    """A warning when `ulimit -n` (already raised to the hard limit, rake_common/entry.py) is
    too low for the slots: past it, actions fail with "Too many open files" (of 200 slots
    under 256 files, 82 did), while the worker looked healthy."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = BASE_FILES + FILES_PER_SLOT * slots
    if soft == resource.RLIM_INFINITY or soft >= need:
        return []
    return [f"{slots} slots may need {need} open files, and ulimit -n is {soft}: actions past that fail "
            f"with \"Too many open files\"; raise the limit (LimitNOFILE= under systemd) or lower --slots"]


def stop_signals() -> list[int]:
    """SIGTERM, SIGINT, and SIGHUP (its terminal closed) unless started under nohup."""
    return [sig for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
            if sig != signal.SIGHUP or signal.getsignal(sig) != signal.SIG_IGN]


def serve(args: argparse.Namespace, log: Log, workdir: str, timing: Timing, curve, early: list[int] = ()) -> int:
    """Run jobs until signalled: the exit status. `early`: stop signals that came while starting."""
    problem = job_limits.unreachable(workdir, args.limits)
    if problem:
        log.error(f"--user: {problem}")
        return 2
    loop = WorkerLoop(args.broker, args.name, socket.gethostname(), args.slots, workdir, timing,
                      log, isolate=args.isolate, cache_dir=cache_dir(args),
                      cache_limit=args.cache_size << 20, curve=curve, limits=args.limits)
    for warning in job_limits.warnings(args.limits) + few_open_files(args.slots):
        log.warning(warning)
    if args.limits.uid is None and os.geteuid() == 0:
        # A root worker runs whatever it is sent as root; only it can do better (--user needs root).
        log.warning("actions run as root: give --user USER, a dedicated unprivileged user (docs/security.md)")
    elif args.limits.max_procs and args.limits.uid is None:
        log("processes per action are not limited (--max-procs needs --user, which needs a root worker)")
    # First SIGTERM/SIGINT/SIGHUP (its terminal closed; not under nohup) drains, a second
    # one kills the running actions and leaves.
    for sig in stop_signals():
        signal.signal(sig, lambda *_: loop.request_stop(hard=loop.stop_requested > 0))
    for _ in early:
        loop.request_stop(hard=loop.stop_requested > 0)
    log(f"{args.name}: {args.slots} slots, broker {args.broker}{' (CURVE)' if curve else ''}, workdir {workdir}")
    loop.run()
    return 1 if loop.failed else 0

if __name__ == "__main__":   # as the installed program: entry's care for streams, locale and Ctrl-C
    from rake_common.entry import worker
    sys.exit(worker())
