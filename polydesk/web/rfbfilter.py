"""Reading the client-to-server half of an RFB stream, message by message.

The station bridge forwards what a browser (noVNC) or any VNC client sends to
the session's RFB socket. While the session is blocked, or for a view-only
watcher, every input message is dropped here: the bytes never reach Xvnc, so
nothing inside the session can lift the block for that station.

Pure: bytes in, bytes out. A message this parser does not know ends the
connection (ProtocolError) rather than being forwarded unread.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable


class ProtocolError(Exception):
    pass


class Phase(enum.Enum):
    VERSION = 1
    SECURITY = 2
    INIT = 3
    MESSAGES = 4


# Client message types (RFC 6143 and the extensions noVNC speaks).
SET_PIXEL_FORMAT, SET_ENCODINGS, UPDATE_REQUEST, KEY, POINTER, CUT_TEXT = 0, 2, 3, 4, 5, 6
CONTINUOUS_UPDATES, XVP, SET_DESKTOP_SIZE, FENCE, QEMU = 150, 250, 251, 248, 255
INPUT = frozenset({KEY, POINTER, CUT_TEXT, XVP, SET_DESKTOP_SIZE, QEMU})
# Pseudo-encodings that would change how the server frames the client's messages, so that this
# reader and the server could disagree on where one ends (and let input through while blocked):
# ExtendedMouseButtons makes a PointerEvent with the top mask bit set one byte longer. They are
# taken out of SetEncodings, so the server never turns them on.
REFRAMING_ENCODINGS = frozenset({-316})
FIXED_SIZE = {SET_PIXEL_FORMAT: 20, UPDATE_REQUEST: 10, KEY: 8, POINTER: 6,
              CONTINUOUS_UPDATES: 10, XVP: 4, QEMU: 12}


def _message_size(buffer: bytes | bytearray) -> int | None:
    """Bytes of the whole message at the start of ``buffer``, or None until enough is there."""
    kind = buffer[0]
    if kind in FIXED_SIZE:
        return FIXED_SIZE[kind]
    if kind == SET_ENCODINGS:
        if len(buffer) < 4:
            return None
        return 4 + 4 * int(struct.unpack_from(">H", buffer, 2)[0])
    if kind == CUT_TEXT:
        if len(buffer) < 8:
            return None
        length = int(struct.unpack_from(">i", buffer, 4)[0])
        return 8 + abs(length)  # negative: the extended clipboard format, same framing
    if kind == FENCE:
        if len(buffer) < 9:
            return None
        return 9 + buffer[8]
    if kind == SET_DESKTOP_SIZE:
        if len(buffer) < 8:
            return None
        return 8 + 16 * buffer[6]
    raise ProtocolError(f"unknown RFB client message type {kind}")


class ClientStream:
    """Feed it what the client sent; it returns what may go on to the server."""

    MAX_BUFFER = 1 << 20

    def __init__(self, input_allowed: Callable[[], bool]) -> None:
        self.input_allowed = input_allowed
        self.phase = Phase.VERSION
        self.dropped = 0  # input messages dropped, for tests and the audit of a block
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        if len(self._buffer) > self.MAX_BUFFER:
            raise ProtocolError("client message too large")
        out = bytearray()
        while self._buffer:
            chunk = self._next()
            if chunk is None:
                break
            out += chunk
        return bytes(out)

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def _next(self) -> bytes | None:
        if self.phase == Phase.VERSION:
            version = self._take(12)
            if version is not None:
                if not version.startswith(b"RFB 003."):
                    raise ProtocolError(f"not an RFB client: {version!r}")
                minor = int(version[8:11]) if version[8:11].isdigit() else 3
                self.phase = Phase.SECURITY if minor >= 7 else Phase.INIT
            return version
        if self.phase == Phase.SECURITY:
            choice = self._take(1)
            if choice is not None:
                if choice != b"\x01":
                    raise ProtocolError("only the None security type is spoken on the bridge")
                self.phase = Phase.INIT
            return choice
        if self.phase == Phase.INIT:
            shared = self._take(1)
            if shared is not None:
                self.phase = Phase.MESSAGES
                return b"\x01"  # always shared: one viewer never kicks the others off
            return None
        size = _message_size(self._buffer)
        if size is None:
            return None
        message = self._take(size)
        if message is None:
            return None
        if message[0] in INPUT and not self.input_allowed():
            self.dropped += 1
            return b""
        if message[0] == SET_ENCODINGS:
            return _without_reframing(message)
        return message


def _without_reframing(message: bytes) -> bytes:
    count = int(struct.unpack_from(">H", message, 2)[0])
    encodings = struct.unpack_from(f">{count}i", message, 4)
    kept = [e for e in encodings if e not in REFRAMING_ENCODINGS]
    if len(kept) == count:
        return message
    return struct.pack(f">BxH{len(kept)}i", SET_ENCODINGS, len(kept), *kept)
