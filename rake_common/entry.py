"""The installed programs' entry points: a Ctrl-C while Python is still loading rake (a few
hundred milliseconds, more on a busy machine) ends the program as the signal's default
would, quietly, instead of with a KeyboardInterrupt traceback through the imports; a
standard stream closed by whoever started the program is held open on /dev/null; and text
is UTF-8 whatever the locale."""

from __future__ import annotations

import importlib
import os
import signal
import sys


def hold_closed_streams() -> None:
    """A descriptor 0, 1 or 2 that was closed (`2>&-`) gets /dev/null, so that no file the
    program opens later takes its number and receives what is meant for that stream. Python
    has already set sys.stdout (or stderr) to None for it: each program says what that means."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)   # the lowest free number: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def utf8_mode() -> None:
    """Run in Python's UTF-8 mode whatever the locale: a Rakefile is UTF-8 and file names are
    bytes, so commands and paths must reach the system as the Rakefile spells them, not
    re-encoded in a locale's charset (ISO-8859-1 would turn "é" into another byte and fail
    on "→"). Only a non-UTF-8 locale costs this one re-exec; a C locale is UTF-8 already."""
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return
    os.execv(sys.executable, [sys.executable, "-X", "utf8", *sys.orig_argv[1:]])


def more_open_files(most: int = 1 << 16) -> None:
    """A daemon takes the open files its hard limit allows (up to `most`), as servers do: a
    shell's soft 1024 ran a worker of a few hundred slots (two descriptors per pooled job
    directory) out of them, and libzmq aborts the process when it cannot make one. Not
    rake-submit: its local actions run with the user's own limits, as under make."""
    import resource
    # Only ours counts: one inherited from the environment (another worker's, or set by
    # hand) would give our actions a limit we were never given, or one over the hard limit.
    os.environ.pop("RAKE_GIVEN_NOFILE", None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = most if hard == resource.RLIM_INFINITY else min(hard, most)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            os.environ["RAKE_GIVEN_NOFILE"] = str(soft)   # for a worker's actions (worker/spawner.py)
        except (ValueError, OSError):
            pass


def _run(module: str) -> int:
    utf8_mode()
    hold_closed_streams()
    # Started with Ctrl-C ignored (a script's `&` job): kept so, as make keeps it.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if not ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    main = importlib.import_module(module).main
    if not ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)   # what each main() expects
    try:
        return main()
    except KeyboardInterrupt:   # before main() could take it (reading its flags or a config
        return 130              # file from a FIFO, say): as in the imports, quietly


def broker() -> int:
    utf8_mode()   # first: its re-exec would find our raised limit and lose the one we were given
    more_open_files()
    return _run("broker.main")


def worker() -> int:
    utf8_mode()   # first: its re-exec would find our raised limit and lose the one we were given
    more_open_files()
    return _run("worker.main")


def submit() -> int:
    """rake-submit leaves without Python's finalization once its work is done (every file
    closed, every thread ended): that resets signal handlers first, so a second signal of
    an interrupt (`timeout` signals the process, then its group) landing then would end it
    by that signal instead of its exit status, 130."""
    status = _run("submitter.main")
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status if isinstance(status, int) else 1)


def status() -> int:
    return _run("submitter.status")


def keygen() -> int:
    return _run("rakeauth.keygen")
