"""Sending a multipart message on the hot paths with less per-frame cost than pyzmq's
send_multipart, whose flag arithmetic (enum objects) costs more than a small send itself."""

from __future__ import annotations

import zmq

MORE = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
LAST = int(zmq.NOBLOCK)
COPY_BELOW = 1 << 16   # smaller frames are copied (cheaper than tracking them: pyzmq's own threshold)


def send_frames(sock: zmq.Socket, frames: list) -> None:
    """Send without blocking; raises zmq.Again (the queue is full) or zmq.ZMQError at the
    first frame, as send_multipart does: zmq then delivers every part or none."""
    copies = [len(frame) < COPY_BELOW for frame in frames]   # a bad frame fails before any is sent
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, MORE if i < last else LAST, copy=copies[i])
