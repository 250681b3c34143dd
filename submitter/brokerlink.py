"""The submitter's end of its broker: a DEALER socket, or the embedded broker's queue in this process."""

from __future__ import annotations

from collections import deque

import zmq

from protocol import Bye, Parcel, encode
from rake_common.zmqio import receive_waiting, send_frames


class SocketLink:
    """A DEALER connected to a broker: messages are encoded, sent and received as frames."""

    def __init__(self, sock: zmq.Socket):
        self.sock = sock

    def poll_items(self) -> tuple:
        return (self.sock,)

    def pack(self, msg, blobs=()) -> list:
        return encode(msg, blobs)

    def send(self, frames: list) -> None:
        """Raises zmq.Again if the socket's queue is full."""
        send_frames(self.sock, frames)

    def receive(self):
        """The next frames waiting, or None."""
        return receive_waiting(self.sock, copy=False)

    def ready(self, events: dict) -> bool:
        return self.sock in events

    def waiting(self) -> bool:
        return False   # what is waiting, poll() says

    def close(self, linger: int = 200) -> None:
        try:
            self.sock.send_multipart(encode(Bye(reason="run over")), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the broker will notice our silence instead
        self.sock.close(linger=linger)


class LocalLink:
    """To the embedded broker in this process: messages go as Parcels, never encoded, onto the
    queue the cluster hands to its broker; the broker's answers are put in `inbox`."""

    def __init__(self, peer: str, to_broker: deque):
        self.peer, self.to_broker = peer, to_broker
        self.inbox: deque = deque()

    def poll_items(self) -> tuple:
        return ()

    def pack(self, msg, blobs=()) -> Parcel:
        return Parcel(msg, list(blobs))

    def send(self, item) -> None:
        """A Parcel, or frames encoded elsewhere (file transfers): the broker takes both."""
        self.to_broker.append((self.peer, item))

    def receive(self):
        return self.inbox.popleft() if self.inbox else None

    def ready(self, events: dict) -> bool:
        return bool(self.inbox)

    def waiting(self) -> bool:
        return bool(self.inbox)

    def close(self, linger: int = 0) -> None:
        self.send(self.pack(Bye(reason="run over")))
