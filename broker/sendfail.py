"""What the broker does when a send fails: a peer's queue full, a peer gone from the socket."""

from __future__ import annotations

from protocol import Error


class SendFailures:
    """The broker core's answers to failed sends (its loop reports them). Mixed into BrokerCore."""

    def on_full(self, send) -> list:
        """The socket's queue to `send.peer` was full, so `send` was dropped. A slow peer is not
        a dead one (heartbeats decide that); but a JOB that never left must be sent again."""
        self.note("dropped_full", f"queue to {send.peer[:16]} is full; message dropped")
        if send.push:
            self.pushes.owe_table(self.last_now, send.peer)
        return self._resend_later(send)

    def _resend_later(self, send, why: str = "the queue to worker {} is full") -> list:
        if send.job is None:
            return []
        client, job = send.job
        self.flight.forget(client, job)
        return [self._send(self.last_now, client, Error(code="worker-busy", message=why.format(send.peer[:16]), job=job))]

    def on_unroutable(self, peer: str, send=None) -> list:
        """The socket could not deliver to `peer`: it has disconnected. Right after our own
        loop stood still (SIGSTOP), a worker is more likely reconnecting (it found us silent)
        than gone: its liveness decides then, and a JOB to it is sent again shortly."""
        self.stats["unroutable"] += 1
        if self.last_now < self.stalled_until and self.table.role(peer) == "worker" and send is not None:
            self.note("unroutable_after_stall", f"worker {peer[:16]} not reachable yet after our stall")
            return self._resend_later(send)
        return self._drop(peer, "unreachable", self.last_now)
