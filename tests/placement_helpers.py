"""A submitter's view of the worker table, and the rows the placement tests build it from."""

from protocol import WorkerInfo, Workers
from submitter.view import WorkerView


ME = "5375626d6974"


def info(wid, name=None, slots=1, queue=0, running=0, seq=1, seen=0):
    return WorkerInfo(id=wid, name=name or wid, host="h", slots=slots, queue=queue,
                      running=running, seq=seq, seen=seen, version="0.1.0")


def view_of(*rows):
    view = WorkerView(ME)
    view.apply(Workers(full=True, workers=tuple(rows)))
    return view
