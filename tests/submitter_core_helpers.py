"""An actionset run on a fake clock and the builders its tests share (submitter/core.py)."""

import itertools

from protocol import Result, WorkerInfo, Workers
from submitter.core import ActionSetRun, RunOptions
from submitter.rakefile import parse_rakefile
from submitter.view import WorkerView


ME = "6d65"


def info(wid, name, slots=1, queue=0, seq=1):
    return WorkerInfo(id=wid, name=name, host="h", slots=slots, queue=queue, running=0, seq=seq)


def three_workers(slots=1):
    """Ids deliberately differ from names, so code that mixes the two up is caught."""
    return (info("id-aa", "w1", slots), info("id-bb", "w2", slots), info("id-cc", "w3", slots))


def actionset(text):
    return parse_rakefile("actionset1:\n" + text).actionsets[0]


def remote(n):
    return actionset("".join(f"\tremote-step {i}\n" for i in range(n)))


def make_run(aset, workers=three_workers(), **options):
    view = WorkerView(ME)
    if workers is not None:
        view.apply(Workers(full=True, workers=tuple(workers)))
    options.setdefault("first_depth", options.get("depth", 2.0))   # steady state; see test_placement
    return ActionSetRun(aset, view, itertools.count(1), RunOptions(**options), 0.0)


def of(kind, effects):
    return [e for e in effects if isinstance(e, kind)]


def result(send, status="exited", code=0, **kw):
    """The RESULT of `send` (a SendJob), as the broker passes it on: from the worker it went to."""
    return Result(job=send.job, client=ME, status=status, code=code, worker=send.worker, **kw)


def gone(*ids):
    return Workers(full=False, workers=(), gone=ids)
