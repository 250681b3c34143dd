"""The installed programs' entry points: a Ctrl-C while Python is still loading rake (a few
hundred milliseconds, more on a busy machine) ends the program as the signal's default
would, quietly, instead of with a KeyboardInterrupt traceback through the imports."""

from __future__ import annotations

import importlib
import signal


def _run(module: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main = importlib.import_module(module).main
    signal.signal(signal.SIGINT, signal.default_int_handler)   # what each main() expects
    return main()


def broker() -> int:
    return _run("broker.main")


def worker() -> int:
    return _run("worker.main")


def submit() -> int:
    return _run("submitter.main")


def status() -> int:
    return _run("submitter.status")
