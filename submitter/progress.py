"""Counting a run for the status line, the job log and the summary: no I/O, clock passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from submitter.rakefile import Action, Rakefile


@dataclass
class Running:
    where: str
    command: str
    epoch: float        # wall clock at start, for the job log
    started: float      # monotonic clock at start
    sent: int


@dataclass
class Ended:
    """What the job log needs about one finished action."""
    seq: int
    where: str
    epoch: float
    runtime: float
    sent: int


@dataclass
class Progress:
    total: int = 0
    ok: int = 0
    failed: int = 0
    began: float = 0.0
    seqs: dict[int, int] = field(default_factory=dict)          # Rakefile line -> position
    running: dict[int, Running] = field(default_factory=dict)   # by line; latest start last
    workers: set[str] = field(default_factory=set)
    last: str = ""

    def begin(self, rakefile: Rakefile, now: float) -> None:
        actions = [a for aset in rakefile.actionsets for a in aset.actions]
        self.total, self.began = len(actions), now
        self.seqs = {a.line: n for n, a in enumerate(actions, 1)}

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def start(self, action: Action, where: str, sent: int, now: float, epoch: float) -> None:
        old = self.running.pop(action.line, None)     # a retry: it moves to the end
        if old is not None and old.where not in ("local", "-"):
            self.workers.add(old.where)   # it ran there too, if lost: "ran at least one action"
        self.running[action.line] = Running(where, action.command, epoch, now, sent)

    def end(self, action: Action, where: str, ok: bool, now: float, epoch: float) -> Ended:
        run = self.running.pop(action.line, None) or Running(where, action.command, epoch, now, 0)
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        if where not in ("local", "-"):
            self.workers.add(where)
        self.last = f"{where}: {action.command}"
        return Ended(self.seqs.get(action.line, 0), where, run.epoch, now - run.started, run.sent)

    def status(self) -> str:
        """`[done/total] worker: command` for the latest action still running, else the last ended."""
        shown = next(reversed(self.running.values()), None)
        what = f"{shown.where}: {shown.command}" if shown else self.last
        return f"[{min(self.done, self.total)}/{self.total}] {what}"

    def summary(self, now: float, sent: int, received: int) -> str:
        parts = [f"{self.ok} {'action' if self.ok == 1 else 'actions'} ok", f"{self.failed} failed"]
        # Started and never ended: remote actions an interrupt cancelled, or whose broker went silent.
        unfinished = len(self.running)
        if unfinished:
            parts.append(f"{unfinished} unfinished")
        if self.total > self.done + unfinished:
            parts.append(f"{self.total - self.done - unfinished} not run")
        workers = len(self.workers | {r.where for r in self.running.values() if r.where not in ("local", "-")})
        parts.append(f"{workers} {'worker' if workers == 1 else 'workers'}")
        parts.append(f"{now - self.began:.2f}s")
        parts.append(f"sent {human_size(sent)}, received {human_size(received)}")
        return ", ".join(parts)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
