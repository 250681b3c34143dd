"""Which message types each authenticated role may send, and the CURVE user id that names a role."""

from __future__ import annotations

from typing import NamedTuple

from protocol import (
    Ack, Bye, Cancel, Chunk, Error, Heartbeat, Hello, Job, Ready, Result, Status, StatusReply, Want,
    Workers,
)

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


def may_send(user: User | None, msg_type: type) -> bool:
    return user is not None and user.role in ALLOWED.get(msg_type, ())
