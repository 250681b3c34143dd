"""The broker's logic: routing between peers, the worker table and liveness, with no sockets."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from typing import Callable, NamedTuple

from broker.asked import Asked
from broker.departures import Departures
from broker.flight import Flight
from broker.meter import Meter
from broker.pushes import Pushes, full_table
from broker.ratelimit import RateLimiter
from broker.roles import KeyChecks, key_of
from broker.sendfail import SendFailures
from broker.strangers import Strangers
from broker.snapshot import build_status
from broker.table import PeerTable, SubmitterRow, WorkerRow
from protocol import (
    Ack, Bye, Cancel, Chunk, DecodeError, EncodeError, Error, Heartbeat, Hello, Job, Parcel, Ready,
    Result, Status, Want, decode, encode, encode_forward, stamped,
)
from protocol.parcel import blob_bytes
from protocol.timing import RECONNECT_MAX, TICK, Timing
from rake_common.logsetup import warn

SILENT = "silent for the liveness window ({:g}s: gone, stopped, or on a link too slow for --heartbeat {:g})"


class Send(NamedTuple):
    peer: str
    frames: list   # or a Parcel, to a peer in this process
    job: tuple | None = None   # (client, job id) of a JOB: told to the client if it is dropped
    push: bool = False         # a WORKERS table or delta: the whole table is sent again if dropped


class BrokerCore(KeyChecks, SendFailures, Departures):
    """Feed it frames and the time; it returns what to send to whom."""

    def __init__(self, timing: Timing, now: float, log: Callable[[str], None] = lambda s: None,
                 limiter: RateLimiter | None = None, allowed_users: set[str] | None = None):
        self.timing = timing
        self.limiter = limiter
        # None: no authentication (every peer may send anything, as on loopback). A set: CURVE
        # peers, whose role is their key's; only these keys (role:fingerprint, whatever file names them) count.
        self.allowed_users = None if allowed_users is None else {key_of(u) for u in allowed_users}
        self.table = PeerTable()
        self.log = log
        self.stats: Counter = Counter()
        self.pushes = Pushes(timing.push_delay)
        self.started, self.last_now, self.stalled_until = now, now, 0.0
        # Submitters that left, so a worker rejoining with their jobs (it was frozen or cut
        # off when they left, and missed the cancel) is told to drop them.
        self.departed: OrderedDict[str, None] = OrderedDict()
        self.flight = Flight()    # for status only: routing never reads it
        # A live submitter's HELLO comes at its socket's next try to reconnect, at most RECONNECT_MAX away.
        self.strangers = Strangers(RECONNECT_MAX + timing.expiry)
        self.meter = Meter()
        self.local: set[str] = set()   # peers in this process: they get Parcels, not frames
        self.asked = Asked()   # which CHUNKs anyone asked for (broker/asked.py)

    # ---- inbound -------------------------------------------------------------------------
    def on_frames(self, now: float, peer: str, frames: list, user: str | None = None) -> list[Send]:
        """`user` is the ZAP User-Id of the connection (None without CURVE)."""
        refused = self._admit(now, peer, frames, user)
        if refused is not None:
            return refused
        try:
            msg, blobs = decode(frames)
        except DecodeError as e:
            self.note("rejected", f"rejected message from {peer[:16]}: {e}")
            return [self._send(now, peer, Error(code="bad-message", message=str(e)[:200]))]
        refused = self._check_role(now, peer, msg, user) if self.allowed_users is not None else None
        return refused if refused is not None else self._on_message(now, peer, msg, blobs, user)

    def on_parcel(self, now: float, peer: str, parcel: Parcel) -> list[Send]:
        """A message from a peer in this process (`local`): built by our own code, not decoded."""
        return self._on_message(now, peer, parcel.msg, parcel.blobs, None)

    def _on_message(self, now: float, peer: str, msg, blobs: list, user: str | None) -> list[Send]:
        self.stats["received"] += 1
        self.last_now = now
        self.table.touch(peer, now)
        self.meter.msgs_in[type(msg)] += 1
        handler = self._handlers.get(type(msg))
        self.sender = user   # the key of the message being handled: a STATUS is answered by it
        try:
            out = handler(self, now, peer, msg, blobs) if handler else []
            row = self.table.row(peer)
            if row is not None and user is not None:
                row.user = user
            return out
        except EncodeError as e:  # e.g. a header at the size limit grew when we stamped ids
            self.note("rejected", f"cannot forward message from {peer[:16]}: {e}")
            job = getattr(msg, "job", None)
            return [self._send(now, peer, Error(code="bad-message", message=str(e)[:200], job=job))]

    def note(self, stat: str, line: str) -> None:
        """Count an event and log it, but not every time: a flood must not flood the log."""
        self.stats[stat] += 1
        n = self.stats[stat]
        if n <= 10 or n & (n - 1) == 0:   # the first ten, then at powers of two: a flood cannot flood the log
            warn(self.log, f"{line} ({stat}: {n})")

    def _on_hello(self, now, peer, msg: Hello, blobs) -> list[Send]:
        refused = self._other_timing(now, peer, msg.heartbeat)
        if refused:
            return refused
        self.departed.pop(peer, None)   # back after all (it was frozen, or cut off)
        self.strangers.greeted(peer)
        if self.table.role(peer) == "worker":
            self._drop(peer, "re-registered as a submitter")
        self.table.submitters[peer] = SubmitterRow(peer, msg.name, now)
        return [self._send(now, peer, piece)._replace(push=True) for piece in full_table(self.table, peer)]

    def _on_ready(self, now, peer, msg: Ready, blobs) -> list[Send]:
        refused = self._other_timing(now, peer, msg.heartbeat)
        if refused:
            return refused
        role = self.table.role(peer)
        out = self._drop(peer, "re-registered as a worker", now) if role == "submitter" else []
        self.table.forget(peer)  # a rejoining worker keeps its row id: no "gone" needed
        self.table.workers[peer] = WorkerRow(peer, msg.name, msg.host, msg.version, msg.load, now)
        if role != "worker":   # once: after a restart a worker answers each ERROR with a READY
            self.log(f"worker {msg.name} ({msg.host}, {msg.load.slots} slots) joined")
        self.pushes.changed_row(now, peer)
        orphaned = [c for c, _ in msg.load.seen if c in self.departed]
        self.strangers.named(now, [c for c, _ in msg.load.seen
                                   if c not in self.departed and c not in self.table.submitters])
        out += [self._send(now, peer, Cancel(job=0, worker=peer, kill=True, client=c, everything=True))
                for c in orphaned]
        # Back after we dropped it: its submitters have run those jobs elsewhere since.
        out += [self._send(now, peer, Cancel(job=job, worker=peer, kill=True, client=c))
                for c, job in self.flight.take_abandoned(peer)]
        if role == "worker":   # it reconnected before we missed it: what its old link held is lost
            for c, job in self.flight.unseen(peer, msg.load):
                out += self._resend_later(Send(peer, [], job=(c, job)), "worker {} reconnected without it")
        return out + [self._send(now, peer, Heartbeat(welcome=True))]   # the cancels came first

    def _on_heartbeat(self, now, peer, msg: Heartbeat, blobs) -> list[Send]:
        if self.table.role(peer) is None:
            # Typically a peer of a broker that restarted: tell it to register again.
            return [self._send(now, peer, Error(code="unknown-peer", message="send HELLO or READY"))]
        if msg.load is not None and self.table.update_load(peer, msg.load):
            self.pushes.changed_row(now, peer)
        return []

    def _on_job(self, now, peer, msg: Job, blobs) -> list[Send]:
        if self.table.role(peer) == "worker":
            return self._refuse(now, peer, "bad-message", "workers cannot submit jobs", msg.job)
        if self.table.role(peer) is None and peer in self.departed:
            # We dropped it and cancelled its jobs everywhere: taken back silently, it would
            # never learn that and wait for ever on a cancelled job (its heartbeats would be
            # answered as a known peer's). Told, it says HELLO and sends its jobs again.
            return self._refuse(now, peer, "unknown-peer", "send HELLO: your jobs were cancelled", msg.job)
        if self.table.role(peer) is None:
            self.table.submitters[peer] = SubmitterRow(peer, "", now)
        if msg.worker not in self.table.workers:
            return self._refuse(now, peer, "unknown-worker", f"no worker {msg.worker}", msg.job)
        self.stats["jobs"] += 1
        out = [self._forward(now, msg.worker, msg, blobs, client=peer)]
        self.flight.sent(now, peer, msg)
        if self.table.count_sent(msg.worker, peer, msg.job):
            self.pushes.changed_row(now, msg.worker)
        return out

    def _on_cancel(self, now, peer, msg: Cancel, blobs) -> list[Send]:
        if msg.worker not in self.table.workers:
            return []
        if msg.kill:   # the submitter forgets the job; its RESULT, if any, is only ACKed
            self.flight.forget(peer, msg.job)
        return [self._forward(now, msg.worker, msg, blobs, client=peer)]

    def _on_ack(self, now, peer, msg: Ack, blobs) -> list[Send]:
        if msg.worker not in self.table.workers:
            return []
        return [self._forward(now, msg.worker, msg, blobs, client=peer)]

    def _on_transfer(self, now, peer, msg, blobs) -> list[Send]:
        """Want and Chunk go to whoever `to` names; blob frames are forwarded untouched."""
        if self.table.role(msg.to) is None:
            self.stats["transfers_dropped"] += 1
            return []
        if type(msg) is Want and self.table.role(peer) is None:   # before its HELLO: no chunk could reach it
            self.stats["transfers_dropped"] += 1
            return [self._send(now, peer, Error(code="unknown-peer", message="send HELLO or READY"))]
        if type(msg) is Want:
            self.asked.wanted(now, peer, msg.to, msg.digest)
        elif not self.asked.may_send(now, peer, msg.to, msg.digest):   # a flood nobody asked for
            self.note("transfers_dropped", f"dropped a chunk from {peer[:16]} that {msg.to[:16]} did not ask for")
            return []
        self.stats["chunks" if isinstance(msg, Chunk) else "wants"] += 1
        return [self._forward(now, msg.to, msg, blobs, sender=peer)]

    def _on_result(self, now, peer, msg: Result, blobs) -> list[Send]:
        out = []
        if self.table.role(peer) != "worker":
            out.append(self._send(now, peer, Error(code="unknown-peer", message="send READY")))
        elif msg.load is not None and self.table.update_load(peer, msg.load):
            self.pushes.changed_row(now, peer)
        if msg.client not in self.table.submitters:
            why = "is gone" if msg.client in self.departed else "is not known (yet: since our start)"
            self.note("results_dropped", f"dropped result of job {msg.job}: submitter {msg.client[:16]} {why}")
            self.flight.ended(now, peer, msg, forwarded=False)
            # One we dropped was cancelled on that worker, which missed it (cut off) and would
            # resend its results; one unknown since our restart may still say HELLO (Strangers).
            if msg.client in self.departed and self.table.role(peer) == "worker":
                out.append(self._send(now, peer, Cancel(job=0, worker=peer, kill=True, client=msg.client, everything=True)))
            elif self.table.role(peer) == "worker":
                self.strangers.named(now, [msg.client])
            return out
        self.stats["results"] += 1
        out.append(self._forward(now, msg.client, msg, blobs, worker=peer))
        mine = key_of(self.table.submitters[msg.client].user) if self.allowed_users is not None else None
        self.flight.ended(now, peer, msg, owner=mine)   # under CURVE, whose status shows it
        return out

    def _on_bye(self, now, peer, msg: Bye, blobs) -> list[Send]:
        return self._drop(peer, f"said bye ({msg.reason})" if msg.reason else "said bye", now)

    def _on_error(self, now, peer, msg: Error, blobs) -> list[Send]:
        self.note("peer_errors", f"peer {peer[:16]} reported error {msg.code}: {msg.message}")
        return []

    def _on_status(self, now, peer, msg: Status, blobs) -> list[Send]:
        mine = key_of(self.sender) if self.allowed_users is not None else None   # CURVE: its own jobs only
        return [self._send(now, peer, build_status(self, now, mine))]   # registers nobody

    _handlers = {
        Hello: _on_hello, Ready: _on_ready, Heartbeat: _on_heartbeat, Job: _on_job,
        Cancel: _on_cancel, Ack: _on_ack, Result: _on_result, Want: _on_transfer,
        Chunk: _on_transfer, Bye: _on_bye, Error: _on_error, Status: _on_status,
    }

    # ---- time ----------------------------------------------------------------------------
    def excuse_silence(self, now: float) -> None:
        """The loop running this broker (and, embedded, all its peers) was stopped: nobody
        could be heard meanwhile, so that time is nobody's silence; and for a window its
        workers may be reconnecting (see on_unroutable)."""
        self.table.excuse(now)
        self.strangers.excuse(now)
        self.asked.excuse(now)
        self.stalled_until = now + self.timing.expiry

    def on_tick(self, now: float) -> list[Send]:
        out = []
        for peer in self.table.silent_since(now - self.timing.expiry):
            out += self._drop(peer, SILENT.format(self.timing.expiry, self.timing.heartbeat), now)
        out += [self._send(now, sub, piece)._replace(push=True) for sub, piece in self.pushes.flush(now, self.table)]
        for client in self.strangers.overdue(now):   # its run ended while we were away
            self.log(f"submitter {client[:16]}, whose jobs workers hold, did not say hello since our start: "
                     "its jobs are cancelled")
            out += self._gone_everywhere(now, client)
        beat = self.timing.heartbeat
        for peer in [*self.table.workers, *self.table.submitters]:
            if self.table.last_sent.get(peer, -1e18) + beat <= now:
                out.append(self._send(now, peer, Heartbeat()))
        return out

    def next_deadline(self) -> float:
        deadlines = [t + self.timing.heartbeat for t in self.table.last_sent.values()]
        oldest = self.table.oldest_heard()
        if oldest is not None:
            deadlines.append(oldest + self.timing.expiry + TICK)
        if self.pushes.due is not None:
            deadlines.append(self.pushes.due)
        deadlines.append(self.strangers.next_deadline() + TICK)
        return min(deadlines, default=math.inf)  # nothing to wait for: sleep until a message

    # ---- helpers -------------------------------------------------------------------------
    def _refuse(self, now, peer, code: str, message: str, job: int | None) -> list[Send]:
        return [self._send(now, peer, Error(code=code, message=message, job=job))]

    def _send(self, now: float, peer: str, msg, blobs=()) -> Send:
        if self.table.role(peer) is not None:  # only known peers are owed heartbeats
            self.table.last_sent[peer] = now
        return self._counted(peer, msg, Parcel(msg, list(blobs)) if peer in self.local else encode(msg, blobs))

    def _forward(self, now: float, peer: str, msg, blobs, **stamps: str) -> Send:
        """Pass on a message checked on arrival, with the sender's id stamped in."""
        self.table.last_sent[peer] = now   # forwarding goes to known peers only
        if peer in self.local:   # never dropped at a full queue: no job to bounce
            return self._counted(peer, msg, Parcel(stamped(msg, **stamps), blobs))
        bounce = (stamps["client"], msg.job) if type(msg) is Job else None
        return self._counted(peer, msg, encode_forward(msg, blobs, **stamps), bounce)

    def _counted(self, peer: str, msg, frames, job: tuple | None = None) -> Send:
        self.meter.msgs_out[type(msg)] += 1
        self.meter.bytes_out += blob_bytes(frames)
        return Send(peer, frames, job)
