"""Reading the client-to-server half of an RFB stream, message by message.

The station bridge forwards what a browser (noVNC) or any VNC client sends to
the session's RFB socket. While the session is blocked, or for a view-only
watcher, every input message is dropped here: the bytes never reach Xvnc, so
nothing inside the session can lift the block for that station.

Dropping input is only sound if this reader and Xvnc cut the stream into the
same messages. So nothing the station sent is passed on as it came: every
message is parsed into its fields and written again in one canonical form,
whose length is exactly what TigerVNC's reader (common/rfb/SMsgReader.cxx,
1.12 as Debian ships it) consumes, whatever its settings. The handshake is not
the station's either: the bridge sends Xvnc a fixed one (RFB 3.8, security
None) as soon as it connects, and only checks that the station said the same.
A message this reader does not know, or one Xvnc would read differently, ends
the connection (ProtocolError) rather than being forwarded unread.

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable

from polydesk.web.rfbclip import extended_clipboard


class ProtocolError(Exception):
    pass


class Phase(enum.Enum):
    VERSION = 1
    SECURITY = 2
    INIT = 3
    MESSAGES = 4


VERSION = b"RFB 003.008\n"  # what Xvnc offers; every current client answers the same
SECURITY_NONE = b"\x01"
OPENING = VERSION + SECURITY_NONE  # the bridge's own handshake, sent to Xvnc at once

# Client message types (RFC 6143 and the extensions noVNC speaks).
SET_PIXEL_FORMAT, SET_ENCODINGS, UPDATE_REQUEST, KEY, POINTER, CUT_TEXT = 0, 2, 3, 4, 5, 6
CONTINUOUS_UPDATES, FENCE, SET_DESKTOP_SIZE, QEMU = 150, 248, 251, 255
INPUT = frozenset({KEY, POINTER, CUT_TEXT, SET_DESKTOP_SIZE, QEMU})
# Pseudo-encodings that would change how the server frames the client's messages, so that this
# reader and the server could disagree on where one ends (and let input through while blocked):
# ExtendedMouseButtons makes a PointerEvent with the top mask bit set one byte longer. They are
# taken out of SetEncodings, so the server never turns them on.
REFRAMING_ENCODINGS = frozenset({-316})
# Xvnc ignores (skips) clipboard texts above its MaxCutText, 256 KiB unless set otherwise, and a
# fence payload above 64 bytes: such messages are consumed here and not passed on at all.
CUT_TEXT_LIMIT = 256 * 1024
FENCE_LIMIT = 64


class ClientStream:
    """Feed it what the client sent; it returns what may go on to the server.

    Send ``OPENING`` to the server first, as soon as it is connected: the station's own
    version and security type are checked here and never passed on.
    """

    MAX_BUFFER = 1 << 20

    def __init__(self, input_allowed: Callable[[], bool],
                 desktop_size: Callable[[int, int], None] | None = None) -> None:
        self.input_allowed = input_allowed
        # Told the width and height of each SetDesktopSize let through (the daemon resizes the
        # screen itself, through RandR); None: such requests are only dropped.
        self.desktop_size = desktop_size
        self.phase = Phase.VERSION
        self.dropped = 0  # input messages dropped, for tests and the audit of a block
        self._buffer = bytearray()
        self._skipping = 0  # bytes still to consume of a clipboard text too long to pass on

    @property
    def answered(self) -> bool:
        """The station has given its version: it may hear what Xvnc said after its own."""
        return self.phase is not Phase.VERSION

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        if self._skipping:
            skipped = min(self._skipping, len(self._buffer))
            del self._buffer[:skipped]
            self._skipping -= skipped
        out = bytearray()
        while self._buffer and not self._skipping:
            chunk = self._next()
            if chunk is None:
                break
            out += chunk
        if len(self._buffer) > self.MAX_BUFFER:  # what is left is one unfinished message
            raise ProtocolError("client message too large")
        return bytes(out)

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def _next(self) -> bytes | None:
        if self.phase == Phase.VERSION:
            version = self._take(len(VERSION))
            if version is None:
                return None
            if version != VERSION:
                raise ProtocolError(f"the station must answer RFB version 3.8, not {version!r}")
            self.phase = Phase.SECURITY
            return b""
        if self.phase == Phase.SECURITY:
            choice = self._take(1)
            if choice is None:
                return None
            if choice != SECURITY_NONE:
                raise ProtocolError("only the None security type is spoken on the bridge")
            self.phase = Phase.INIT
            return b""
        if self.phase == Phase.INIT:
            if self._take(1) is None:
                return None
            self.phase = Phase.MESSAGES
            return b"\x01"  # always shared: one viewer never kicks the others off
        parsed = _message(self._buffer)
        if parsed is None:
            return None
        size, canonical = parsed
        kind = self._buffer[0]
        if size > len(self._buffer):  # too long to pass on: consume it as it comes, unbuffered
            self._skipping = size - len(self._buffer)
            self._buffer.clear()
            return b""
        message = bytes(self._buffer[:8]) if kind == SET_DESKTOP_SIZE else b""
        del self._buffer[:size]
        if kind in INPUT and not self.input_allowed():
            self.dropped += 1
            return b""
        if kind == SET_DESKTOP_SIZE:
            # TigerVNC 1.12 takes a SetDesktopSize whose next 7 bytes have not arrived yet for a
            # one-byte message and reads the rest as new messages (fixed upstream in 2026, commit
            # 1894d416): when the bytes reach Xvnc is up to the kernel, so it never gets one.
            self.dropped += 1
            if self.desktop_size is not None:
                width, height = struct.unpack_from(">HH", message, 2)
                self.desktop_size(width, height)
            return b""
        return canonical


def _message(buffer: bytearray) -> tuple[int, bytes] | None:
    """(bytes the message takes, its canonical form) for the message at the start of
    ``buffer``, None until enough of it is there. A size beyond the buffer means: drop it."""
    kind = buffer[0]
    reader = _READERS.get(kind)
    if reader is None:
        raise ProtocolError(f"unknown RFB client message type {kind}")
    return reader(buffer)


def _fixed(size: int, write: Callable[[bytes], bytes]) -> Callable[[bytearray], tuple[int, bytes] | None]:
    def read(buffer: bytearray) -> tuple[int, bytes] | None:
        if len(buffer) < size:
            return None
        return size, write(bytes(buffer[:size]))
    return read


def _pixel_format(m: bytes) -> bytes:
    bpp, depth, big, true, rmax, gmax, bmax, rshift, gshift, bshift = struct.unpack_from(
        ">BBBBHHHBBB", m, 4)
    return struct.pack(">Bxxx BBBBHHHBBBxxx", SET_PIXEL_FORMAT, bpp, depth, big != 0, true != 0,
                       rmax, gmax, bmax, rshift, gshift, bshift)


def _rectangle_message(kind: int) -> Callable[[bytes], bytes]:
    def write(m: bytes) -> bytes:
        flag, x, y, w, h = struct.unpack_from(">BHHHH", m, 1)
        return struct.pack(">BBHHHH", kind, flag != 0, x, y, w, h)
    return write


def _key(m: bytes) -> bytes:
    down, keysym = struct.unpack_from(">BxxI", m, 1)
    return struct.pack(">BBxxI", KEY, down != 0, keysym)


def _pointer(m: bytes) -> bytes:
    return struct.pack(">BBHH", POINTER, *struct.unpack_from(">BHH", m, 1))


def _qemu(m: bytes) -> bytes:
    subtype, down, keysym, keycode = struct.unpack_from(">BHII", m, 1)
    if subtype != 0:  # Xvnc knows only the extended key event; it would hang up
        raise ProtocolError(f"unknown QEMU client message {subtype}")
    return struct.pack(">BBHII", QEMU, 0, down != 0, keysym, keycode)


def _encodings(buffer: bytearray) -> tuple[int, bytes] | None:
    if len(buffer) < 4:
        return None
    (count,) = struct.unpack_from(">H", buffer, 2)
    size = 4 + 4 * count
    if len(buffer) < size:
        return None
    kept = [e for e in struct.unpack_from(f">{count}i", buffer, 4) if e not in REFRAMING_ENCODINGS]
    return size, struct.pack(f">BxH{len(kept)}i", SET_ENCODINGS, len(kept), *kept)


def _cut_text(buffer: bytearray) -> tuple[int, bytes] | None:
    if len(buffer) < 8:
        return None
    (length,) = struct.unpack_from(">I", buffer, 4)
    extended = bool(length & 0x80000000)
    if extended:  # Xvnc reads -length bytes of the extended clipboard format
        length = (-length) & 0xFFFFFFFF
        if length < 4 or length & 0x80000000:
            raise ProtocolError("extended clipboard message of an impossible length")
    size = 8 + length
    if length > CUT_TEXT_LIMIT:
        return size, b""  # Xvnc would skip it: not passed on
    if len(buffer) < size:
        return None
    text = bytes(buffer[8:size])
    if not extended:
        return size, struct.pack(">BxxxI", CUT_TEXT, length) + text
    try:
        payload = extended_clipboard(text, ClientStream.MAX_BUFFER)
    except ValueError as exc:
        raise ProtocolError(f"extended clipboard message: {exc}") from exc
    return size, struct.pack(">Bxxxi", CUT_TEXT, -len(payload)) + payload


def _fence(buffer: bytearray) -> tuple[int, bytes] | None:
    if len(buffer) < 9:
        return None
    size = 9 + buffer[8]
    if len(buffer) < size:
        return None
    if buffer[8] > FENCE_LIMIT:
        return size, b""  # Xvnc would skip it: not passed on
    (flags,) = struct.unpack_from(">I", buffer, 4)
    return size, struct.pack(">BxxxIB", FENCE, flags, buffer[8]) + bytes(buffer[9:size])


def _desktop_size(buffer: bytearray) -> tuple[int, bytes] | None:
    if len(buffer) < 8:
        return None
    size = 8 + 16 * buffer[6]
    if len(buffer) < size:
        return None
    return size, b""  # never passed on (see ClientStream._next)


_READERS: dict[int, Callable[[bytearray], tuple[int, bytes] | None]] = {
    SET_PIXEL_FORMAT: _fixed(20, _pixel_format),
    SET_ENCODINGS: _encodings,
    UPDATE_REQUEST: _fixed(10, _rectangle_message(UPDATE_REQUEST)),
    KEY: _fixed(8, _key),
    POINTER: _fixed(6, _pointer),
    CUT_TEXT: _cut_text,
    CONTINUOUS_UPDATES: _fixed(10, _rectangle_message(CONTINUOUS_UPDATES)),
    FENCE: _fence,
    SET_DESKTOP_SIZE: _desktop_size,
    QEMU: _fixed(12, _qemu),
}
