"""Finishing a remote action at the submitter: its output files (inline, or fetched by
digest first), then its printed output. One action is delivered whole or not at all."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from protocol import Chunk
from protocol.paths import check_relative_path, normalise_path, printable
from rake_common.tree import unlink_quietly
from submitter.core import Deliver
from submitter.files import OutputRefused, OutputWriter, PartlyWritten
from submitter.interrupts import held
from submitter.rakefile import Action
from submitter.report import Reporter
from submitter.traffic import FileTraffic, inline_bytes


def _bytes(frame) -> bytes:
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)


class Settled(NamedTuple):
    """What became of delivered actions: frames to send, actions to run again (index,
    worker, why; why "" for the worker being lost), actions failed (already reported), and
    actions whose outputs are all in place now."""
    frames: list
    redo: list[tuple[int, str, str]]
    failed: list[int]
    done: list[int] = []


@dataclass
class Pending:
    effect: Deliver
    action: Action
    waiting: set[str]          # digests still on their way


class Deliveries:
    """Owns the actions whose outputs are still arriving, and the downloads they wait for."""

    def __init__(self, traffic: FileTraffic, reporter: Reporter, writer: OutputWriter,
                 number: int, timeout: float | None, pulse=lambda: None, name_of=lambda w: printable(w[:12])):
        self.traffic, self.reporter, self.writer = traffic, reporter, writer
        self.number, self.timeout = number, timeout
        self.pulse = writer.pulse = pulse   # called between outputs and during copies: the loop's heartbeat goes on
        self.name_of = traffic.incoming.name_of = name_of   # a worker as the user knows it
        self.pending: dict[int, Pending] = {}
        self.ready: dict[str, str] = {}       # digest -> downloaded temporary file
        self.needs: Counter = Counter()       # digest -> outputs still to be placed from it

    def start(self, e: Deliver, action: Action) -> tuple[list, bool | None]:
        """(frames to send, ok); ok is None while output files are still being fetched."""
        r = e.result
        self.traffic.learned(r.worker, r.outputs, e.blobs)
        # Every file the action made comes back, also when it failed (SPEC §3; as make,
        # without .DELETE_ON_ERROR): the log of a failed test is what its user wants to read.
        remote = [f for f in r.outputs if f.blob is None]
        self.needs.update(f.digest for f in remote)
        waiting = {f.digest for f in remote if f.digest not in self.ready}
        if not waiting:
            return [], self._finish(Pending(e, action, set()))
        sizes = {f.digest: f for f in remote}
        try:
            frames = [fr for d in sorted(waiting) for fr in self.traffic.fetch(r.worker, sizes[d])]
        except OSError as err:   # nowhere to put it (a read-only directory, a full disk)
            self._release(Pending(e, action, waiting))   # and stop what it started
            self.reporter.action_failed(self.number, action, f"cannot receive its outputs into "
                                                             f"{self.traffic.where()}: {err.strerror}")
            return [], False
        self.pending[e.index] = Pending(e, action, waiting)
        return frames, None

    def worker_gone(self, worker: str) -> Settled:
        """`worker` is gone with the outputs still coming from it: the actions that succeeded
        run again, those that failed anyway are reported now without their outputs. An action
        of another worker that waited on one of those downloads (the same contents) fetches
        it from its own worker now."""
        self.traffic.incoming.fail_peer(worker)   # also downloads of actions already settled
        return self._lost_at(worker, f"worker {self.name_of(worker)} was lost", "")

    def _lost_at(self, worker: str, why: str, redo_why: str, digest: str | None = None) -> Settled:
        """The outputs on `worker` (or only its blob `digest`) will not come: settle the
        actions that waited for them, refetch for the rest."""
        lost = [i for i, p in self.pending.items()
                if p.effect.result.worker == worker and (digest is None or digest in p.waiting)]
        redo, failed = self._lose(lost, why)
        more, frames = self._refetch_orphans()
        return Settled(frames, [(i, worker, redo_why) for i in redo], failed + more)

    def _refetch_orphans(self) -> tuple[list[int], list]:
        """Fetch again, from its own worker, each digest an action waits for that nobody
        downloads any more: (actions failed for want of a place to put it, frames)."""
        frames, failed = [], []
        for index, p in list(self.pending.items()):
            r = p.effect.result
            try:
                for ref in r.outputs:
                    if ref.digest in p.waiting and not self.traffic.incoming.busy(ref.digest):
                        frames += self.traffic.fetch(r.worker, ref)
            except OSError as e:   # nowhere to put it (a full disk)
                failed += self._lose([index], f"cannot receive its outputs into {self.traffic.where()}: "
                                              f"{e.strerror}", redo=False)[1]
        return failed, frames

    def _lose(self, indices: list[int], why: str, redo: bool = True) -> tuple[list[int], list[int]]:
        """Drop these actions, whose outputs will not come: (those to run again, as they
        succeeded, those reported as failed now, with their own output if they ran)."""
        again, failed = [], []
        for index in indices:
            p = self.pending.pop(index)
            self._release(p)
            r = p.effect.result
            if redo and r.status == "exited" and r.code == 0:
                again.append(index)
            else:   # reported as any failure, with what it printed and which files are lost
                lost = sorted(repr(f.path) for f in r.outputs if f.blob is None and f.digest in p.waiting)
                # "outputs 'a', 'b' lost": a Ctrl-C mid-download names every file it cut off
                noun = "output" if len(lost) == 1 else "outputs"
                self._report(p, [f"{noun} {', '.join(lost[:3])}{' and more' if len(lost) > 3 else ''} lost: {why}"],
                             label="outputs lost")
                failed.append(index)
        return again, failed

    def _release(self, p: Pending) -> None:
        """What only this action needed goes: downloaded files, downloads in progress."""
        for digest in {f.digest for f in p.effect.result.outputs if f.blob is None}:
            self.needs[digest] -= sum(1 for f in p.effect.result.outputs if f.blob is None and f.digest == digest)
            if self.needs[digest] > 0:
                continue
            del self.needs[digest]
            path = self.ready.pop(digest, None)
            if path is not None:
                unlink_quietly(path)
            self.traffic.incoming.abandon(digest)

    def resume(self, now: float, since: float) -> None:
        """The broker is back, not knowing us: downloads wait for their holders to be
        confirmed (ask_again); see Incoming.resume."""
        self.traffic.incoming.resume(now, since)

    def ask_again(self, workers: set, now: float) -> list:
        """These workers are confirmed after a broker reset: frames asking again for what
        they were sending us."""
        return self.traffic.incoming.ask_again(workers)

    def on_chunk(self, chunk: Chunk, blobs: list) -> Settled:
        """A piece of a download: the actions it finished, or failed. A holder that no longer
        has the blob (`missing`) loses only its own actions' outputs: the others fetch the
        same contents from their own workers."""
        try:
            frames, done, failed = self.traffic.on_chunk(chunk, blobs)
        except OSError as e:   # our own disk: the actions waiting for this blob fail
            self.traffic.incoming.abandon(chunk.digest)
            frames, done, failed = [], None, f"cannot write it (downloading into {self.traffic.where()}): {e.strerror}"
        if failed and chunk.missing:
            lost = self._lost_at(chunk.sender, failed, f"its outputs could not be fetched: {failed}", chunk.digest)
            return lost._replace(frames=lost.frames + self.traffic.incoming.pump())
        ended = self._settle(chunk.digest, done, failed)
        # A slot is free now: the next download waiting its turn starts (or, if it cannot,
        # is given up on by check_stalls).
        return Settled(frames + self.traffic.incoming.pump(), [], [i for i, ok in ended if not ok],
                       [i for i, ok in ended if ok])

    def check_stalls(self, now: float, patience: float) -> Settled:
        """Re-ask for stalled downloads: (frames, [(action, worker, why)] to run again, actions
        failed). An action that succeeded, whose download was given up on, runs again, as
        when its worker is lost (its worker or the broker was unreachable for long); one that
        failed anyway is reported now, without its outputs."""
        # And start downloads waiting their turn, whose slots abandoned ones freed.
        again = self.traffic.incoming.restart_stalled(now, patience)
        if again:   # a pause the user sees: say why
            self.reporter.note(f"{len(again)} output download{'s' if len(again) != 1 else ''} stalled: "
                               "asked again from the start")
        frames = self.traffic.incoming.pump() + again
        redo, failed = [], []
        for digest, why in self.traffic.incoming.given_up():
            hit = [i for i, p in self.pending.items() if digest in p.waiting]
            workers = {i: self.pending[i].effect.result.worker for i in hit}
            again, lost = self._lose(hit, why)
            redo += [(i, workers[i], f"its outputs could not be fetched: {why}") for i in again]
            failed += lost
        return Settled(frames, redo, failed)

    def abandon_all(self, why: str) -> None:
        """The run ends (an interrupt, a broker given up on) before these outputs arrive: the
        actions whose end is known are reported, with their output, as failed."""
        self._lose(list(self.pending), why, redo=False)

    def _settle(self, digest: str, done, failed) -> list[tuple[int, bool]]:
        if done:
            self.ready[done[0]] = done[1]
        ended = []
        if failed:
            hit = [i for i, p in self.pending.items() if digest in p.waiting]
            ended += [(i, False) for i in self._lose(hit, failed, redo=False)[1]]
        for index, p in list(self.pending.items()):
            if done and done[0] in p.waiting:
                p.waiting.discard(done[0])
                if not p.waiting:
                    del self.pending[index]
                    ended.append((index, self._finish(p)))
        return ended

    def _take(self, digest: str) -> str:
        """The downloaded file for one output: the file itself for the last use, else a copy."""
        self.needs[digest] -= 1
        if self.needs[digest] > 0:
            return self.traffic.copy_of(self.ready[digest], self.pulse)
        del self.needs[digest]
        return self.ready.pop(digest)

    def _finish(self, p: Pending) -> bool:
        said = False
        try:
            refused, written = self._stage(p), []
            with held:   # all renamed, or none, and said: an interrupt waits for both
                try:
                    if refused:
                        self.writer.abort()
                    else:
                        self.writer.commit()
                except PartlyWritten as err:
                    refused.append(str(err))
                    written = err.written
                except OutputRefused as err:
                    refused.append(str(err))
                self._report(p, refused, written)
                said = True
        except BaseException:   # interrupted while staging: none of them, no temporary file left,
            self.writer.abort()  # and its end (known) said, as for one whose download was cut
            if not said:
                with held:
                    self._report(p, ["interrupted before its outputs were written"], label="outputs lost")
            raise
        return not refused

    def _stage(self, p: Pending) -> list[str]:
        """Each output of the action at a temporary name next to its place; why any could not be."""
        e, action, r = p.effect, p.action, p.effect.result
        refused: list[str] = []
        for f in r.outputs:   # all of an action's outputs, or none
            self.pulse()
            try:
                if not check_relative_path(f.path) and self.traffic.changed_here(r.job, normalise_path(f.path)):
                    if f.blob is None:   # its download is not needed any more
                        unlink_quietly(self._take(f.digest))
                    raise OutputRefused(f"{f.path!r} changed here while the action ran: not overwritten "
                                        f"(run again to rebuild from the new contents)")
                if f.blob is not None:
                    data = e.blobs[f.blob]
                    if f.digest and hashlib.sha256(data).hexdigest() != f.digest:
                        raise OutputRefused(f"{f.path!r} arrived corrupted (digest mismatch)")
                    self.writer.stage(f.path, f.mode, action.line, data=data)
                else:
                    self.writer.stage(f.path, f.mode, action.line, download=self._take(f.digest))
            except OutputRefused as err:
                refused.append(str(err))
            except OSError as err:   # copying a shared download: our disk
                refused.append(f"cannot write {f.path!r}: {err.strerror}")
        self.traffic.delivered(r.job)
        return refused

    def _report(self, p: Pending, refused: list[str], written: list[str] = (), label: str = "outputs refused") -> None:
        """The action's end as the user sees it: FAILED or not, its output, then why its
        outputs were not written, if they were not."""
        e, action, r = p.effect, p.action, p.effect.result
        out = _bytes(e.blobs[r.stdout]) if r.stdout is not None else b""
        err = _bytes(e.blobs[r.stderr]) if r.stderr is not None else b""
        # By-digest outputs were fetched and checked against their digest, so against their size.
        received = 0 if refused else inline_bytes(r.outputs, e.blobs) + sum(f.size for f in r.outputs if f.blob is None)
        why = printable(r.error)   # the worker's text, for one line: no escape code, no newline
        # A timeout the worker's own limit cut shorter than ours names that limit (in `why`).
        timeout = None if r.status == "timeout" and r.error.startswith("killed:") else self.timeout
        self.reporter.action_ended(self.number, action, e.worker, r.status, r.code, out, err, timeout,
                                   received=received, why=why, truncated=r.truncated, refused=label if refused else "")
        if why and r.status == "exited" and r.code == 0:   # e.g. what it left running was killed
            self.reporter.warning(f"line {action.line}: {why}")
        for s in r.skipped:   # "name: why", the name an action chose
            self.reporter.warning(f"line {action.line}: output {printable(s)}")
        for msg in refused:
            self.reporter.error(f"line {action.line}: {msg}")
        if refused and written:
            shown = ", ".join(repr(path) for path in written[:3]) + (" and more" if len(written) > 3 else "")
            self.reporter.error(f"line {action.line}: {len(written)} of its {len(r.outputs)} outputs were "
                                f"written before that: {shown}")
        elif refused:
            self.reporter.error(f"line {action.line}: none of its outputs were written")
