"""rake wire protocol: messages, validation and framing, with no sockets and no clock."""

from protocol.codec import SIGNATURE, decode, encode, encode_forward
from protocol.errors import DecodeError, EncodeError, ProtocolError
from protocol.parcel import Parcel, stamped
from protocol.messages import (
    Ack, Bye, Cancel, Chunk, Error, FileRef, Heartbeat, Hello, Job, Load, Ready, Result, Status, StatusReply,
    Want, WorkerInfo, Workers,
)

__all__ = [
    "SIGNATURE", "decode", "encode", "encode_forward", "DecodeError", "EncodeError", "ProtocolError",
    "Ack", "Bye", "Cancel", "Chunk", "Want", "Error", "FileRef", "Heartbeat", "Hello", "Job", "Load", "Ready",
    "Result", "Status", "StatusReply", "WorkerInfo", "Workers", "Parcel", "stamped",
]
