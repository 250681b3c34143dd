"""Which message types each authenticated role may send, the CURVE user id that names a role,
and the broker core's checks of who may join and send (KeyChecks)."""

from __future__ import annotations

from typing import NamedTuple

from protocol import (
    Ack, Bye, Cancel, Chunk, Error, Heartbeat, Hello, Job, Ready, Result, Status, StatusReply, Want,
    Workers,
)
from protocol.parcel import blob_bytes
from protocol.schema import MAX_ID
from protocol.timing import other_interval

WORKER = "worker"
SUBMITTER = "submitter"
ROLES = (WORKER, SUBMITTER)
BOTH = frozenset(ROLES)

# Message type -> roles allowed to send it, when peers are authenticated. A new message type
# (say STATUS, for submitter keys) is one line here; a type missing from the table is refused.
ALLOWED: dict[type, frozenset[str]] = {
    Hello: frozenset({SUBMITTER}),
    Job: frozenset({SUBMITTER}),
    Ack: frozenset({SUBMITTER}),
    Cancel: frozenset({SUBMITTER}),
    Ready: frozenset({WORKER}),
    Result: frozenset({WORKER}),
    Heartbeat: BOTH,
    Want: BOTH,    # a worker fetches inputs from submitters; a submitter fetches outputs
    Chunk: BOTH,
    Bye: BOTH,
    Error: BOTH,
    Workers: frozenset(),   # only the broker sends tables
    Status: frozenset({SUBMITTER}),   # rake-status, with a submitter's key
    StatusReply: frozenset(),
}


class User(NamedTuple):
    """Who a CURVE key belongs to: role, a short fingerprint of the key, and the file's name."""
    role: str
    fingerprint: str
    name: str

    def encode(self) -> str:
        return f"{self.role}:{self.fingerprint}:{self.name}"


def parse_user(user_id: str | None) -> User | None:
    """The User a ZAP User-Id names, or None when it names no role (a NULL peer, say)."""
    parts = (user_id or "").split(":", 2)
    if len(parts) != 3 or parts[0] not in ROLES:
        return None
    return User(*parts)


def key_of(user_id: str | None) -> str:
    """A User-Id without its name: the key itself, whatever file (or files) lists it."""
    return ":".join((user_id or "").split(":", 2)[:2])


def may_send(user: User | None, msg_type: type) -> bool:
    return user is not None and user.role in ALLOWED.get(msg_type, ())


class KeyChecks:
    """The broker core's part that decides who may join and send: a peer's heartbeat interval,
    and on keys (CURVE user ids), what a key's role may send, a routing id taken over by
    another key, and keys revoked. Mixed into BrokerCore."""

    def _admit(self, now: float, peer: str, frames: list, user: str | None) -> list | None:
        """None if the message may be decoded; otherwise what to answer (usually nothing)."""
        self.meter.bytes_in += blob_bytes(frames)
        if len(peer) > MAX_ID:
            # zmq allows 255-byte routing ids; ours fit the wire's 64-character ids. A longer
            # one could never be named in a message: refuse it before it enters the table.
            self.note("rejected", f"ignored a peer with a {len(peer) // 2}-byte routing id")
            return []
        if self.limiter is not None and not self.limiter.allow(user or peer, now):
            # Over its rate: dropped unread (no decode, no reply), so a flood costs little.
            self.note("rate_limited", f"rate limit: dropping messages from {peer[:16]}")
            return []
        if self.allowed_users is not None and key_of(user) not in self.allowed_users:
            self.note("unauthorized", f"ignored a message from {peer[:16]}: key {user or '(none)'} is not allowed")
            return []   # a revoked or unknown key is told nothing
        return None

    def _other_timing(self, now: float, peer: str, heartbeat: float) -> list:
        """A refusal when the peer beats at another interval than ours (see other_interval)."""
        why = other_interval(self.timing.heartbeat, heartbeat)
        if why is None:
            return []
        self.note("rejected", f"refused {peer[:16]}: {why}")
        return [self._send(now, peer, Error(code="bad-timing", message=why))]

    def _check_role(self, now: float, peer: str, msg, user: str) -> list | None:
        """The refusal to send when the key's role may not send `msg`, or its routing id is another key's."""
        job = getattr(msg, "job", None)
        if not may_send(parse_user(user), type(msg)):
            role = user.split(":", 1)[0]
            self.note("forbidden", f"refused {msg.TYPE} from {peer[:16]}: a {role} key may not send it")
            return self._refuse(now, peer, "bad-message", f"a {role} key may not send {msg.TYPE}", job)
        row = self.table.row(peer)
        if row is not None and row.user and key_of(row.user) != key_of(user):
            # Another key took over this routing id (ROUTER_HANDOVER): stop routing to it.
            self.note("forbidden", f"routing id {peer[:16]} of {row.user} was taken by {user}")
            return self._drop(peer, "its routing id was taken by another key", now) + \
                self._refuse(now, peer, "bad-message", "this routing id belongs to another key", job)
        return None

    def revoke(self, now: float, allowed_users: set[str]) -> list:
        """The key lists changed: forget every peer whose key is no longer allowed (a key
        listed under another name, or under a second one, is the same key)."""
        self.allowed_users = {key_of(u) for u in allowed_users}
        out = []
        for row in [*self.table.workers.values(), *self.table.submitters.values()]:
            if row.user and key_of(row.user) not in self.allowed_users:
                out += self._drop(row.id, "its key was revoked", now)
        return out
