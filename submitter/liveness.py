"""How rake-submit keeps its broker link alive and tells the broker's silence from its own."""

from __future__ import annotations

import signal
import time

import zmq

from protocol import Heartbeat
from protocol.timing import RECONNECT_MAX
from submitter.core import EXIT_NO_WORKER
from submitter.local import GRACE


class BrokerLiveness:
    """Part of Session (submitter/session.py), whose state it uses: last_heard, last_sent,
    last_hello, link, core, deliveries, local, reporter, timing, options."""

    def _explain_stop(self, seconds: float, away: float | None = None) -> None:
        """A stop past the liveness window (Ctrl-Z; SIGSTOP or a frozen machine: a poll back
        that much late) is our silence, not the broker's: greet it again, do not give up on it
        (--broker-wait). A real broker took it for our end and cancelled our remote actions.
        `seconds` is how late the loop came back; `away`, if longer, the whole time it was."""
        if seconds <= self.timing.expiry:
            return
        self.last_heard = max(self.last_heard, time.monotonic() - self.timing.expiry)
        if self.cluster is None and self.core is not None and self.core.remote and not self.stop_explained:
            self.reporter.note(f"rake-submit was stopped for {max(seconds, away or 0):.0f}s, longer than the liveness "
                               "window: the broker cancelled its remote actions, which run again")
            self.stop_explained = True

    def _keep_alive(self, now: float) -> None:
        if self.link is None:
            return
        if now - self.last_heard > self.options.broker_wait:
            # Once, but even after a failure halted the actionset: its running remote
            # actions, or their outputs, are waited for too, and would be for ever.
            if self.core.status != EXIT_NO_WORKER and (not self.core.halted or self.core.remote
                                                       or self.deliveries.pending):
                self.reporter.error(f"no word from the broker for {self.options.broker_wait:g}s; giving up")
                self._perform(self.core.interrupt(now, EXIT_NO_WORKER))
                self.deliveries.abandon_all("the broker went silent")
                # As on an interrupt: SIGTERM first, so that a trap can clean up.
                self.local.registry.kill_all(signal.SIGTERM, GRACE)
            self.last_heard = now   # once is enough: the run is ending
        elif now - max(self.last_heard, self.last_hello) > self.timing.expiry:
            # The broker went quiet (restarted?): say HELLO again; zmq reconnects underneath.
            # Once a silence, not every window of it (a minute's outage said it 19 times).
            if not self.stop_explained and self.silence_said != self.last_heard:
                self.reporter.note("broker silent; saying hello again")
                self.silence_said = self.last_heard
            self.stop_explained = False
            self._reset_broker(now)
        elif now - self.last_sent >= self.timing.heartbeat:
            self._send(self.link.pack(Heartbeat()))

    def _warn_uncancelled(self, remote: int, now: float) -> None:
        """Interrupted while the broker is silent: our CANCEL may never reach it, so say
        what may run on (a broker back from a restart cancels a submitter's jobs once it has
        not said hello for as long as a reconnect can take, plus the liveness window)."""
        silent = now - self.last_heard
        # The embedded broker runs in this process: it was never silent on its own, and
        # closing it kills what its worker runs.
        if self.link is None or self.cluster is not None or not remote or silent <= self.timing.expiry:
            return
        # Our own stop looks the same (Ctrl-Z, then Ctrl-C before fg: the handler runs before
        # the loop sees how late it is): what a live broker sent meanwhile waits, and zmq's I/O
        # thread, stopped with us, may need a moment to read it. Under INSIST_AFTER, so that
        # a second signal cannot land here, before the local actions are stopped.
        try:
            if self.link.ready(dict(self._poller().poll(500))):
                return
        except zmq.ZMQError:
            pass
        silent = time.monotonic() - self.last_heard
        self.reporter.warning(f"the broker has been silent for {silent:.0f}s: {remote} remote "
                              f"action{'s' if remote != 1 else ''} may run on until it is back, which then "
                              f"cancels them within {RECONNECT_MAX + self.timing.expiry:.0f}s")

    def _pulse(self) -> None:
        """Between the outputs of a long delivery (tens of thousands of files take seconds):
        the broker hears from us, or it drops us and cancels our running actions; and as
        nothing was read meanwhile, the broker's silence is ours."""
        now = time.monotonic()
        self.last_heard = max(self.last_heard, now)
        if self.link is not None and now - self.last_sent >= self.timing.heartbeat:
            self._send(self.link.pack(Heartbeat()))
