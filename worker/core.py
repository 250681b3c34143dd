"""The worker's logic: queue and slots, load reports, broker liveness, with no sockets."""

from __future__ import annotations

from collections import Counter, deque
from typing import Callable

from protocol import Ack, Bye, Cancel, Chunk, DecodeError, EncodeError, Error, Heartbeat, Job, Load, Parcel, Ready, Want, decode, encode
from protocol.messages import MAX_SEEN
from protocol.timing import TICK, Timing
from protocol.version import VERSION
from rake_common.logsetup import fail, warn
from worker.effects import Abandon, GiveUp, Key, Kill, Reconnect, Refetch, Send, Serve, Start, Take  # noqa: F401 (re-exported)
from worker.execute import Outcome
from worker.halts import Halts, is_failure, take_held
from worker.inputs import InputGate, MemoryBlobs, input_named
from worker.outbox import Outbox
from worker.result import result_message, unsent_result
from worker.silence import BrokerSilence


CUT_OFF = "worker {} was cut off from the broker; the job was handed back"
# `cancelled`, not `error`: it never ran, so its submitter sends it elsewhere without counting
# an attempt (a rolling restart of every worker must not fail a build).
DRAINING = "not started: worker {} is draining"


class WorkerCore:
    """Feed it broker frames, finished jobs and the time; it says what to send, start or kill."""

    def __init__(self, name: str, host: str, slots: int, timing: Timing, now: float,
                 log: Callable[[str], None] = lambda s: None, store=None):
        self.name, self.host, self.slots, self.timing = name, host, slots, timing
        self.log = log
        self.queue: deque[tuple[Key, Job, list]] = deque()
        self.running: dict[Key, Job] = {}
        self.ending: set[Key] = set()   # running, but the process has ended: its slot is free
        self.cancelled: set[Key] = set()
        self.rerun: dict[Key, tuple] = {}   # cancelled ones asked for again: (JOB, blobs)
        self.seq, self.silence = 0, BrokerSilence(timing, now)
        self.last_sent, self.draining, self.full = now, False, ""   # full: why our disk is, set by the loop
        self.reported = now   # the last message carrying our load (READY, HEARTBEAT, RESULT)
        self.outbox = Outbox(timing.expiry)
        self.gate = InputGate(store if store is not None else MemoryBlobs())
        self.halts = Halts(timing.expiry)
        self.refusals: set[str] = set()   # broker ERROR messages already logged
        self.stats: Counter = Counter()
        self.local = False   # the broker is in this process (embedded): send Parcels

    # ---- state reports -------------------------------------------------------------------
    def load(self) -> Load:
        self.seq += 1
        seen: dict[str, int] = {}
        for client, job in [*self.running, *self.gate.keys(), *(k for k, _, _ in self.queue)]:
            if client in seen or len(seen) < MAX_SEEN:   # the rest overrate our load: safe
                seen[client] = max(seen.get(client, 0), job)
        held = len(self.queue) + len(self.running) + len(self.gate.waiting)
        return Load(queue=held, running=len(self.running) - len(self.ending),
                    slots=self.slots, seq=self.seq, seen=tuple(sorted(seen.items())),
                    draining=self.draining, full=bool(self.full))

    def greet(self, now: float) -> list:
        """READY, sent on (re)connecting or when asked, then every result not yet acknowledged."""
        ready = Ready(name=self.name, host=self.host, version=VERSION, load=self.load(),
                      heartbeat=self.timing.heartbeat)
        return [self._send(now, ready)] + [Send(f) for f in self.outbox.everything(now)]

    # ---- inbound -------------------------------------------------------------------------
    def on_frames(self, now: float, frames) -> list:
        """Frames from the broker, or a Parcel from one in this process."""
        handed_back = self._note_silence(now)
        self.silence.heard(now)
        try:
            msg, blobs = frames if type(frames) is Parcel else decode(frames)
        except DecodeError as e:
            self.stats["rejected"] += 1
            warn(self.log, f"rejected message from broker: {e}")
            return handed_back
        return handed_back + self._on_message(now, msg, blobs)

    def _on_message(self, now: float, msg, blobs: list) -> list:
        if isinstance(msg, Job):
            return self._on_job(now, msg, blobs)
        if isinstance(msg, Cancel):
            return self._on_cancel_all(msg, now) if msg.everything else self._on_cancel(now, msg)
        if isinstance(msg, Ack):
            self.outbox.ack(msg.client, msg.jobs)
            return []
        if isinstance(msg, Want):
            return [Serve(msg)]
        if isinstance(msg, Chunk):
            return [Take(msg, blobs)]
        if isinstance(msg, Error) and msg.code == "unknown-peer":
            return self.greet(now) + [Refetch()]   # after the READY: a WANT before it is refused
        if isinstance(msg, Error) and msg.code == "bad-timing":
            return [GiveUp(msg.message)]   # it will not take us: say why, rather than retry
        if isinstance(msg, Error) and msg.message not in self.refusals and len(self.refusals) < 16:
            self.refusals.add(msg.message)   # said once: it will be refused again at every READY
            warn(self.log, f"the broker refused our message: {msg.code}: {msg.message}" + (
                " (is --curve-key a worker key, listed in the broker's --worker-keys?)" * ("key may not" in msg.message)))
        if isinstance(msg, Heartbeat) and msg.welcome and self.silence.welcomed():
            return self._start_ready(now)   # any cancel for us came before this
        return []

    def _on_job(self, now: float, job: Job, blobs: list) -> list:
        if job.acks:   # whatever becomes of the job, the results it acknowledges arrived
            self.outbox.ack(job.client, job.acks)
        key = (job.client, job.job)
        if key in self.cancelled and key in self.running:
            # Its submitter, dropped by the broker, is back and sends it again while it is
            # being killed: run it again then, rather than answer "cancelled" to nobody.
            self.outbox.revive(job.client, now)
            self.rerun[key] = (job, blobs)
            return []
        if key in self.running or key in self.gate.waiting or any(k == key for k, _, _ in self.queue):
            return []  # a duplicate delivery; the first copy will answer
        self.outbox.revive(job.client, now)   # a job from it: the submitter is back after all
        if self.outbox.get(key) is not None:
            # Resent after a broker restart, or by a submitter the broker had dropped while
            # the link was down (its results were parked): answer again, never run it twice.
            return [Send(self.outbox.get(key))]
        if self.draining:
            return self._result(now, job, Outcome("cancelled", error=DRAINING.format(self.name)))
        if self.silence.rejoining:   # sent before the silence: it may run elsewhere by now
            return self._result(now, job, Outcome("error", error=CUT_OFF.format(self.name)))
        if self.halts.stopped(job, now):
            return self._result(now, job, Outcome("cancelled", error="not started: a job of this submitter failed"))
        try:
            files, fetches = self.gate.admit(key, job, blobs)
        except (ValueError, OSError) as e:   # an OSError said as words, not "[Errno 28] ..."
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            return self._result(now, job, Outcome("error", error=f"inputs refused: {why}"))
        if files is not None:
            self.queue.append((key, job, files))
        quiet = now - self.reported >= self.timing.heartbeat / 4   # said now: or others started with us pick us too
        return (fetches if files is None else self._start_ready(now)) + ([self._beat(now)] if quiet else [])

    def on_fetched(self, now: float, digest: str, ok: bool, why: str = "", theirs: bool = True) -> list:
        """A blob fetch ended: start the jobs it completes, fail those it cannot (`theirs`:
        the submitter's fault, so only its jobs; else ours, a full disk: every one waiting)."""
        ready, failed, again = self.gate.fetched(digest, ok, theirs)
        self.queue.extend(ready)
        out = [s for _, job in failed
               for s in self._result(now, job, Outcome("error", error=f"could not fetch {input_named(job, digest)}: {why}"))]
        return out + again + self._start_ready(now)

    def _on_cancel(self, now: float, msg: Cancel) -> list:
        key = (msg.client, msg.job)
        self.rerun.pop(key, None)   # sent again while being killed, then cancelled: not run again
        waiting = self.gate.drop(key)
        if waiting is not None:
            return self._result(now, waiting, Outcome("cancelled"))
        for i, (k, job, _) in enumerate(self.queue):
            if k == key:
                del self.queue[i]
                return self._result(now, job, Outcome("cancelled"))
        if key in self.running and msg.kill:
            self.cancelled.add(key)
            return [Kill(key)]
        kept = self.outbox.get(key)
        if key in self.running or msg.kill:
            return []
        if kept is not None:
            return [Send(kept)]   # asked again: its RESULT may have been lost
        # One we never had (its JOB was bounced or lost): its submitter, which cannot tell, waits.
        return self._result(now, Job(job=msg.job, worker="", command="-", client=msg.client), Outcome("cancelled"))

    def _on_cancel_all(self, msg: Cancel, now: float) -> list:
        """The submitter is gone: drop its queued jobs, kill its running ones, keep nothing."""
        self.outbox.drop_client(msg.client, now)
        self.halts.forget(msg.client)
        abandoned, restarted = self.gate.drop_client(msg.client)
        self.queue = deque(q for q in self.queue if q[0][0] != msg.client)
        self.rerun = {k: v for k, v in self.rerun.items() if k[0] != msg.client}
        mine = [k for k in self.running if k[0] == msg.client]
        self.cancelled.update(mine)
        return [Kill(k) for k in mine] + [Abandon(d) for d in abandoned] + restarted

    def on_exited(self, now: float, key: Key, failed: bool = False) -> list:
        """A job's process ended (`failed`: not with status 0); its outcome follows. Its slot
        takes the next job now, but not one of the same submitter's after a failure."""
        if key not in self.running:
            return []
        self.ending.add(key)
        if failed and self.running[key].halt_on_failure and key not in self.cancelled:
            self.halts.exited_badly(key)
        return self._start_ready(now)

    def on_finished(self, now: float, key: Key, outcome: Outcome) -> list:
        job = self.running.pop(key, None)
        self.ending.discard(key)
        if job is None:
            return []
        withdraw = self.halts.decided(key, key not in self.cancelled and is_failure(outcome.status, outcome.code), now)
        if key in self.cancelled:
            self.cancelled.discard(key)
            outcome.status = "cancelled"
            if key in self.rerun:
                return self._on_job(now, *self.rerun.pop(key)) + self._start_ready(now)
        held = self._withdraw(now, key) if withdraw else []
        return self._result(now, job, outcome) + held + self._start_ready(now)

    def _withdraw(self, now: float, key: Key) -> list:
        """After a failure's RESULT: the jobs held back behind it did not run."""
        why = f"not started: job {key[1]} of this submitter failed"
        held = take_held(key[0], self.queue, self.gate)
        return [s for job in held for s in self._result(now, job, Outcome("cancelled", error=why))]

    # ---- time ----------------------------------------------------------------------------
    def excuse_silence(self, now: float) -> None:
        """As BrokerCore.excuse_silence: the broker shares our stopped loop, it did not go quiet."""
        self.silence.excuse(now)

    def on_tick(self, now: float) -> list:
        why = self.silence.reconnect_due(now)
        if why:
            warn(self.log, why)
            self._note_silence(now)   # what it hands back is kept: greet() sends it
            return [Reconnect()] + self.greet(now) + [Refetch()]
        out = [Send(f) for f in self.outbox.due(now)]
        if now - self.last_sent >= self.timing.heartbeat:
            out.append(self._beat(now))
        return out + self._note_silence(now)

    def next_deadline(self) -> float:
        resend = self.outbox.next_deadline()
        return min(self.last_sent + self.timing.heartbeat, self.silence.next_deadline(),
                   resend + TICK if resend is not None else float("inf"))

    def drain(self, now: float) -> list:
        """Stop taking jobs: say so at once, hand queued ones back, finish what is running."""
        self.draining = True
        held = [job for _, job, _ in self.queue] + [self.gate.drop(k) for k in self.gate.keys()]
        self.log(f"draining: {len(self.running)} running jobs finish here, {len(held)} queued handed back")
        out = [s for job in held
               for s in self._result(now, job, Outcome("cancelled", error=DRAINING.format(self.name)))]
        self.queue.clear()
        return out + [self._beat(now)]

    def leave(self, now: float, killed: bool = False) -> list:
        """The last message: the broker forgets us now rather than after the liveness window."""
        reason = "stopped hard" if killed else ("draining done" if self.draining else "stopping")
        if self.outbox.kept:   # their submitters run those actions again, when they miss them
            warn(self.log, f"leaving with {len(self.outbox.kept)} results not acknowledged by their submitters")
        return [self._send(now, Bye(reason=reason))]

    def settled(self, now: float) -> bool:
        """Nothing queued or running, and every result sent within a window acknowledged: a
        draining worker waits for those ACKs (milliseconds; a window if the broker is away)."""
        return not (self.queue or self.running or self.gate.waiting or self.outbox.awaiting(now))

    # ---- helpers -------------------------------------------------------------------------
    def _note_silence(self, now: float) -> list:
        """After a silence the broker drops a worker for (frozen, cut off), our submitters may
        run our queued jobs elsewhere already: they are handed back (RESULT error: a submitter
        that placed one again drops it, one that did not places it again), and so is any job
        read before the broker welcomes our new READY. That wait ends after a window at most."""
        if self.silence.rejoining:
            if self.silence.rejoin_waited(now):
                return self._start_ready(now)   # what waited meanwhile (inputs that arrived)
            return []
        if not self.silence.cut_off(now):
            return []
        held, self.queue = [job for _, job, _ in self.queue], deque()
        held += [self.gate.drop(key) for key in list(self.gate.keys())]   # their fetches may go on
        if held:
            warn(self.log, f"broker silent for {now - self.silence.answered:.1f}s: {len(held)} queued jobs handed back")
        for job in held:   # kept in the outbox, so the READY of greet() carries them
            self._result(now, job, Outcome("error", error=CUT_OFF.format(self.name)))
        return self.greet(now)

    def _start_ready(self, now: float) -> list:
        out = self._note_silence(now)
        if self.silence.rejoining:
            return out
        # Jobs still being collected (on the pool, when big) hold at most `slots` more.
        while self.queue and len(self.running) - min(len(self.ending), self.slots) < self.slots:
            entry = self.halts.take_next(self.queue, self.running)
            if entry is None:
                break   # all held back: a failure's outcome is awaited
            self.running[entry[0]] = entry[1]
            out.append(Start(*entry))
        return out

    def _beat(self, now: float) -> Send:
        return self._send(now, Heartbeat(load=self.load()))

    def _result(self, now: float, job: Job, o: Outcome) -> list:
        """The RESULT of a job, kept until acknowledged; nothing if its submitter is gone."""
        send = self._encode_result(now, job, o)
        return [send] if self.outbox.keep((job.client, job.job), send.frames, now) else []

    def _encode_result(self, now: float, job: Job, o: Outcome) -> Send:
        try:
            return self._send(now, *result_message(job, o, self.load()))
        except EncodeError as e:  # e.g. too many outputs for one header: say so, stay up
            fail(self.log, f"job {job.job}: result could not be encoded: {e}")
            return self._send(now, unsent_result(job, f"result could not be sent: {e}", self.load()))

    def _send(self, now: float, msg, blobs=()) -> Send:
        self.last_sent = now
        if getattr(msg, "load", None) is not None:
            self.reported = now
        return Send(Parcel(msg, list(blobs)) if self.local else encode(msg, blobs))

