"""Error types raised by the protocol layer; each says whose fault it was."""


class ProtocolError(Exception):
    """Base of every error the protocol layer raises."""

    peer_fault = False


class DecodeError(ProtocolError):
    """Frames from the network are not a valid message: the sending peer's fault."""

    peer_fault = True


class EncodeError(ProtocolError):
    """We tried to send something the contract does not allow: our own fault."""

    peer_fault = False
