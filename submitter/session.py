"""The submitter's loop: run actionsets in order, owning the broker link and local processes."""

from __future__ import annotations

import itertools
import time

import zmq

from protocol import Cancel, Chunk, DecodeError, EncodeError, Error, Hello, Job, Parcel, Result, Want, Workers, decode
from protocol.paths import printable
from protocol.timing import Timing
from protocol.version import VERSION
from submitter.core import (EXIT_FAILED, EXIT_INTERRUPTED, ActionSetRun, Deliver, Failed, Note,
                            RunLocal, RunOptions, SendCancel, SendJob, Withdrawn)
from submitter.effects import WorkerGone
from submitter.acks import PendingAcks, job_frames
from submitter.delivery import Deliveries
from submitter.interrupts import Interrupted, acting_on_interrupt, drain_signal_wake, signal_wake
from submitter.jobcontrol import follow_stops
from submitter.files import OutputWriter, current_umask
from submitter.inputs import missing_requires, unreadable
from submitter.traffic import FileTraffic
from submitter.rakefile import ActionSet, Rakefile
from submitter.report import Reporter
from submitter.view import WorkerView
from submitter.liveness import BrokerLiveness
from submitter.local import GRACE, LocalActions, local_threads


class Session(BrokerLiveness):
    """Runs a parsed Rakefile in `root`; `link` (submitter/brokerlink.py) leads to the broker,
    or is None if every action is local."""

    def __init__(self, rakefile: Rakefile, root: str, options: RunOptions, reporter: Reporter,
                 timing: Timing, link=None, me: str = "",
                 first_table: Workers | None = None, name: str = "rake-submit", cluster=None):
        self.rakefile, self.root, self.options, self.name = rakefile, root, options, name
        self.reporter, self.timing, self.link = reporter, timing, link
        self.view = WorkerView(me) if link is not None else None
        if first_table is not None:
            self.view.apply(first_table)
        self.job_ids = itertools.count(1)
        self.announced: set[int] = set()   # job ids whose start was reported
        self.local = LocalActions(local_threads(rakefile, options))
        self.traffic = FileTraffic(root, timing.expiry)
        self.last_sent = self.last_heard = self.last_hello = time.monotonic()
        self.acks = PendingAcks()
        self.polled = self.poller = None   # see _poller
        self.cluster = cluster   # an EmbeddedCluster this loop also drives, or None
        self.umask = current_umask()   # the actions' everywhere, as if run here
        self.stopped, self.stop_explained = 0.0, False   # when Ctrl-Z last stopped us
        self.silence_said = -1.0   # last_heard when "broker silent" was last said
        self.core: ActionSetRun | None = None   # the actionset running (none before the first starts)

    def run(self) -> int:
        status = 0
        started = time.monotonic()
        unfollow = follow_stops(self.pause)
        try:
            for aset in self.rakefile.actionsets:
                problems = missing_requires(aset, self.root)
                if problems:   # the first 50, as a Rakefile's errors: not one line per file of 100,000
                    for p in problems[:50]:
                        self.reporter.error(f"actionset {aset.number}, {p}")
                    if len(problems) > 50:
                        self.reporter.error(f"actionset {aset.number}: ... and {len(problems) - 50} more "
                                            "required files missing or refused")
                    return EXIT_FAILED
                status = self._run_actionset(aset)
                self.traffic.close()   # its downloads are all in place: no litter for the next
                if status:
                    break
        finally:
            unfollow()
            self.close()
        if self.reporter.verbose:
            self.reporter.note(f"files: sent {self.traffic.sent_bytes} bytes, received "
                               f"{self.traffic.received_bytes} bytes, in {time.monotonic() - started:.2f}s")
        return status

    def pause(self, resume: bool) -> None:
        """Ctrl-Z and fg: our local and embedded actions stop and go on with us."""
        self.local.registry.pause(resume)
        if self.cluster is not None:
            self.cluster.pause(resume)
        now = time.monotonic()
        if resume:
            self._explain_stop(now - self.stopped)
        self.stopped = now

    def close(self) -> None:
        self.local.close()
        self.traffic.close()

    # ---- one actionset -------------------------------------------------------------------
    def _run_actionset(self, aset: ActionSet) -> int:
        self.core = ActionSetRun(aset, self.view, self.job_ids, self.options, time.monotonic())
        self.deliveries = Deliveries(self.traffic, self.reporter, OutputWriter(self.root),
                                     aset.number, self.options.timeout, pulse=self._pulse,
                                     name_of=self.core.view_name)
        try:
            self._perform(self.core.start(time.monotonic()))
            while not self.core.finished or self.deliveries.pending:
                self._wait_and_handle()
        except (Interrupted, KeyboardInterrupt) as e:
            acting_on_interrupt()
            remote = len(self.core.remote)
            self._perform(self.core.interrupt(time.monotonic()))
            self._warn_uncancelled(remote, time.monotonic())
            self.deliveries.abandon_all("interrupted during the download")
            status = e.status if isinstance(e, Interrupted) else EXIT_INTERRUPTED
            try:
                self.local.registry.kill_all(status - 128, GRACE)   # the signal first, as from a terminal
            except (Interrupted, KeyboardInterrupt):   # insisting: no more grace, but say what ran
                acting_on_interrupt()
                self.local.registry.kill_all()
            self.local.pool.shutdown(wait=True)   # each has posted its outcome: show what it printed
            self._take_local_results()           # (its trap's messages too), as make's would be
            self.reporter.interrupted(status - 128, remote)
            return status
        if self.core.dropped and self.reporter.verbose:
            self.reporter.note(f"actionset {aset.number}: dropped {self.core.dropped} late or repeated results")
        return self.core.status

    def _wait_and_handle(self) -> None:
        wait, before = self._timeout(), time.monotonic()
        events = dict(self._poller().poll(wait * 1000 + 1))
        away = time.monotonic() - before
        self._explain_stop(away - wait, away)
        if self.cluster is not None and self.cluster.handle(events):
            self.last_heard = time.monotonic()   # its broker was stopped with us
        if self.local.wake_r in events:
            self._take_local_results()
        if signal_wake() in events:   # its handler has run (or is held back): read the bytes
            drain_signal_wake()
        if self.link is not None and self.link.ready(events):
            self._take_broker_messages()
        now = time.monotonic()
        self._perform(self._settled(self.deliveries.check_stalls(now, 3 * self.timing.expiry)))
        self._perform(self.core.on_tick(now))
        self._keep_alive(now)

    def _poller(self) -> zmq.Poller:
        """Made again only when what it watches changes (an embedded worker without a
        spawner, the last resort, polls a descriptor per job; a reset broker keeps the link)."""
        items = (self.local.wake_r, *((signal_wake(),) if signal_wake() is not None else ()),
                 *(self.link.poll_items() if self.link is not None else ()),
                 *(self.cluster.poll_items() if self.cluster is not None else ()))
        if items != self.polled:
            self.polled, self.poller = items, zmq.Poller()
            for item in items:
                self.poller.register(item, zmq.POLLIN)
        return self.poller

    def _timeout(self) -> float:
        deadlines = [time.monotonic() + 3600]
        if self.link is not None:
            if self.link.waiting():
                return 0.0
            deadlines.append(self.last_sent + self.timing.heartbeat)
        if self.core.next_deadline() is not None:
            deadlines.append(self.core.next_deadline())
        if self.cluster is not None:
            deadlines.append(self.cluster.next_deadline())
        return min(3600.0, max(0.0, min(deadlines) - time.monotonic()))

    # ---- inbound -------------------------------------------------------------------------
    def _take_broker_messages(self) -> None:
        for _ in range(256):
            item = self.link.receive()
            if item is None:
                break   # not return: the batch's ACKs below must go out
            self.last_heard = time.monotonic()
            try:
                msg, blobs = item if type(item) is Parcel else decode(item)
            except DecodeError as e:
                self.reporter.warning(f"ignored a bad message from the broker: {printable(e)}")
                continue
            self._perform(self._dispatch(msg, blobs))
        self._flush_acks()

    def _dispatch(self, msg, blobs) -> list:
        now = time.monotonic()
        if isinstance(msg, Workers):
            doubted = set(self.core.view.unconfirmed)
            out = self.core.on_workers(now, msg)
            for frames in self.deliveries.ask_again(doubted - set(self.core.view.unconfirmed), now):
                self._send(frames)
            return out
        if isinstance(msg, Want):
            for frames in self.traffic.on_want(msg):
                self._send(frames)
            return []
        if isinstance(msg, Chunk):
            return self._settled(self.deliveries.on_chunk(msg, blobs))
        if isinstance(msg, Result):
            self.acks.add(msg.worker, msg.job, repeat=msg.job not in self.core.remote)
            return self.core.on_result(now, msg, blobs)
        if isinstance(msg, Error):
            if msg.code == "unknown-peer":
                return self._reset_broker(now)
            return self.core.on_error(now, msg)
        return []

    def _reset_broker(self, now: float) -> list:
        """The broker does not know us (it restarted): register again, re-confirm workers."""
        self.last_hello = now
        self._say_hello()
        self.deliveries.resume(now, 2 * self.timing.expiry)   # a stall shows within a window
        return self.core.on_broker_reset(now)

    def _flush_acks(self) -> None:
        for ack in self.acks.flush():
            self._send(self.link.pack(ack))

    def _take_local_results(self) -> None:
        for index, outcome in self.local.ended():
            action = self.core.actions[index]
            if outcome.status == "withdrawn":   # the run was ending before it started: not run
                self.reporter.withdrawn(action)
                self._perform(self.core.on_local_done(time.monotonic(), index, True))
                continue
            self.reporter.action_ended(self.core.actionset.number, action, "local", outcome.status,
                                       outcome.code, outcome.stdout, outcome.stderr, why=outcome.error)
            ok = outcome.status == "exited" and outcome.code == 0
            self._perform(self.core.on_local_done(time.monotonic(), index, ok))

    # ---- effects -------------------------------------------------------------------------
    def _perform(self, effects: list) -> None:
        for e in effects:
            if isinstance(e, RunLocal):
                self._run_local(e.index)
            elif isinstance(e, SendJob):
                self._send_job(e)
            elif isinstance(e, SendCancel):
                self._send(self.link.pack(Cancel(job=e.job, worker=e.worker, kill=e.kill)))
            elif isinstance(e, Deliver):
                self._deliver(e)
            elif isinstance(e, Failed):
                self.reporter.action_failed(self.core.actionset.number, self.core.actions[e.index], e.message)
            elif isinstance(e, Note):
                (self.reporter.error if e.error else self.reporter.note)(e.text)
            elif isinstance(e, Withdrawn):
                self.reporter.withdrawn(self.core.actions[e.index])
            elif isinstance(e, WorkerGone):
                self._perform(self._settled(self.deliveries.worker_gone(e.worker)))

    def _settled(self, s) -> list:
        """Send what delivery asks for; run again or fail the actions it gave up on."""
        now = time.monotonic()
        for f in s.frames:
            self._send(f)
        return ([e for index, worker, why in s.redo for e in self.core.redo(now, index, worker, why)]
                + [e for index in s.failed for e in self.core.fail(now, index)]
                + [e for index in s.done for e in self.core.delivered(now, index)])

    def _run_local(self, index: int) -> None:
        action = self.core.actions[index]
        self.reporter.started(action, "local")
        self.local.start(index, action.command, self.root)

    def _send_job(self, e: SendJob) -> None:
        action = self.core.actions[e.index]
        try:
            files, blobs = self.traffic.job_files(e.worker, action, e.job)
        except OSError as err:
            self.reporter.action_failed(self.core.actionset.number, action,
                                        f"cannot read input: {unreadable(err, self.root)}")
            self._perform(self.core.unsendable(time.monotonic(), e.job))
            return
        if e.job not in self.announced:   # a resend (same id) is no new start
            self.announced.add(e.job)
            self.reporter.started(action, self.view.name(e.worker), sent=sum(f.size for f in files), remote=True)
        job = Job(job=e.job, worker=e.worker, command=action.command, files=files, attempt=e.attempt,
                  timeout=self.options.timeout, halt_on_failure=not self.options.keep_going, umask=self.umask)
        try:
            frames = job_frames(job, blobs, self.acks, self.link.pack)
        except EncodeError as err:   # e.g. a command or a requires list too big for one message
            self.reporter.action_failed(self.core.actionset.number, action, f"cannot be sent: {err}")
            self._perform(self.core.unsendable(time.monotonic(), e.job))
            return
        self._send(frames)

    def _deliver(self, e: Deliver) -> None:
        frames, ok = self.deliveries.start(e, self.core.actions[e.index])
        for f in frames:
            self._send(f)
        if ok is not None:   # else its big outputs are still to be fetched (_settled says)
            self._perform((self.core.delivered if ok else self.core.fail)(time.monotonic(), e.index))

    def _say_hello(self) -> None:
        self._send(self.link.pack(Hello(version=VERSION, name=self.name, heartbeat=self.timing.heartbeat)))

    def _send(self, frames) -> None:
        self.last_sent = time.monotonic()
        try:
            self.link.send(frames)
        except zmq.Again:
            self.reporter.warning("broker is not taking messages; one was dropped")
