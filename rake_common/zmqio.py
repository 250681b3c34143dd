"""Sending a multipart message on the hot paths with less per-frame cost than pyzmq's
send_multipart, whose flag arithmetic (enum objects) costs more than a small send itself;
and ending zmq before the interpreter, since big frames are sent without a copy."""

from __future__ import annotations

import functools

import zmq

MORE = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
LAST = int(zmq.NOBLOCK)
COPY_BELOW = 1 << 16   # smaller frames are copied (cheaper than tracking them: pyzmq's own threshold)
EVENTS, POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def receive_waiting(sock: zmq.Socket, copy: bool = True) -> list | None:
    """The next message waiting on `sock`, or None. Asks the socket first: a receive that
    finds nothing raises zmq.Again, which costs eight times what asking does, and every drain
    of a socket ends with one."""
    if not sock.getsockopt(EVENTS) & POLLIN:
        return None
    try:
        return sock.recv_multipart(zmq.NOBLOCK, copy=copy)
    except zmq.Again:
        return None


def send_frames(sock: zmq.Socket, frames: list) -> None:
    """Send without blocking; raises zmq.Again (the queue is full) or zmq.ZMQError at the
    first frame, as send_multipart does: zmq then delivers every part or none."""
    copies = [len(frame) < COPY_BELOW for frame in frames]   # a bad frame fails before any is sent
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, MORE if i < last else LAST, copy=copies[i])


def ends_zmq(main):
    """Wrap a program's main so that, however it ends, zmq's context ends before Python does.
    Frames of 64 KiB and more (file chunks) are sent without a copy: libzmq reads them from
    Python's buffers while they wait in its queues. Left to the interpreter's exit, those
    buffers could be freed first, and libzmq's I/O thread would read freed memory (a SIGSEGV
    at exit). Every socket is closed by then (each with its own linger); only the loop
    thread of a worker or submitter uses zmq, so closing here is safe."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            zmq.Context.instance().destroy(linger=0)
    return wrapper
