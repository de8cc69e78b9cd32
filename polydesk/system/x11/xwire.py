"""A minimal X11 client connection: bytes out, packets in (capture, VNC settings, idle time).

Why not python-xlib here: every request through it costs 50-100 µs of Python
(request objects, locks, reply parsing), and a thumbnail of a changed screen
needs three or four; at 50 frames a second that alone was a fifth of the CPU
budget. The capture needs a dozen fixed requests, so they are packed here with
``struct``; a frame costs two round trips and a few microseconds of Python.

Little-endian only (we say so in the setup); one thread at a time (the
thumbnailer's pool). The server runs as the session's user, so nothing it sends is
trusted: the connection goes only to the session's own server (``peer``), a reply may
not claim more than ``MAX_REPLY`` bytes, events pile up to ``MAX_EVENTS`` at most, and a
server that stops answering, or trickles, fails the call after ``timeout`` seconds
instead of holding a thread or the daemon's memory.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from polydesk.core.screen import Screen, Server
from polydesk.system.peer import credentials
from polydesk.system.x11.connect import connect
from polydesk.system.x11.xauth import COOKIE_NAME

REPLY, ERROR = 1, 0
GENERIC_EVENT = 35
CONFIGURE_NOTIFY = 22
STRUCTURE_NOTIFY_MASK = 1 << 17
CW_EVENT_MASK = 1 << 11
# The largest reply we read: a 32-bit GetImage of a 4096 x 4096 screen and its header. A
# server claiming more is lying or hostile; it ends the connection before any is kept.
MAX_REPLY = 4 * 4096 * 4096 + 32
MAX_EVENTS = 4096  # kept between two looks; a server flooding events ends the connection


class WireError(Exception):
    """The server refused a request, closed the connection, or did not answer in time."""


@dataclass(frozen=True)
class Extension:
    opcode: int
    first_event: int
    first_error: int


@dataclass(frozen=True)
class Setup:
    root: int
    width: int
    height: int
    root_depth: int
    bits_per_pixel: int  # of the root depth's pixmap format
    lsb_first: bool
    masks: tuple[int, int, int]  # the root visual's red, green and blue masks
    id_base: int
    id_mask: int


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


class Wire:
    def __init__(self, display: str, xauthority: Path, server: Server, timeout: float = 5.0,
                 cookie: bytes | None = None) -> None:
        """Connect to ``display`` (which must be served by ``server``) with the cookie in
        ``xauthority`` (or ``cookie``, when given); WireError if refused or not answering."""
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._inbox = bytearray()
        self.events: list[bytes] = []  # 32-byte events, in order, until the caller takes them
        self.seq = 0
        self._next_id = 0
        try:
            screen = Screen(display, str(xauthority), server.pid, server.start)
            self._sock, cookie = connect(screen, timeout, cookie)
        except (OSError, ValueError) as exc:
            raise WireError(f"cannot connect to {display}: {exc}") from exc
        try:
            self._sock.sendall(struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(COOKIE_NAME), len(cookie))
                               + pad(COOKIE_NAME) + pad(cookie))
            head = self._take(8)
            data = self._take(struct.unpack_from("<H", head, 6)[0] * 4)
            if head[0] != 1:
                reason = data[:head[1]].decode(errors="replace")
                raise WireError(f"display {display} refused the connection: {reason}")
            self.setup = _parse_setup(data)
        except (OSError, ValueError, IndexError, struct.error) as exc:
            self._sock.close()
            raise WireError(f"cannot connect to {display}: {exc}") from exc
        except WireError:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def peer(self) -> tuple[int, int]:
        """The uid and gid the X server runs as."""
        peer = credentials(self._sock)
        return peer.uid, peer.gid

    def new_id(self) -> int:
        self._next_id += 1
        setup = self.setup
        return setup.id_base | (self._next_id & setup.id_mask)

    # ------------------------------------------------------------ requests

    def send(self, *requests: bytes) -> int:
        """Send requests (one write); the sequence number of the last."""
        try:
            self._sock.sendall(b"".join(requests))
        except OSError as exc:
            raise WireError(f"the X server went away: {exc}") from exc
        self.seq += len(requests)
        return self.seq

    def reply(self, seq: int) -> bytes:
        """The reply to request ``seq`` (header and data), keeping events met on the way."""
        want = seq & 0xFFFF
        self._deadline = time.monotonic() + self._timeout
        while True:
            packet = self._packet(block=True)
            assert packet is not None
            kind, number = packet[0] & 0x7F, struct.unpack_from("<H", packet, 2)[0]
            if kind == ERROR:
                raise WireError(f"X error {packet[1]} on request {packet[10]}.{packet[8]} (#{number})")
            if kind == REPLY and number == want:
                return packet
            if kind != REPLY:
                self._keep(packet)

    def call(self, request: bytes) -> bytes:
        return self.reply(self.send(request))

    def poll(self) -> None:
        """Read what the server has sent so far, without waiting: events into ``events``."""
        while (packet := self._packet(block=False)) is not None:
            kind = packet[0] & 0x7F
            if kind == ERROR:
                raise WireError(f"X error {packet[1]} on request {packet[10]}.{packet[8]}")
            if kind != REPLY:
                self._keep(packet)

    def _keep(self, event: bytes) -> None:
        if len(self.events) >= MAX_EVENTS:
            raise WireError(f"the X server sent more than {MAX_EVENTS} events unasked")
        self.events.append(event)

    def sync(self) -> None:
        """Until the server has handled every request sent (errors of ours raise)."""
        self.call(struct.pack("<BxH", 43, 1))  # GetInputFocus

    def query_extension(self, name: str) -> Extension | None:
        raw = name.encode()
        reply = self.call(struct.pack("<BxHHxx", 98, 2 + len(pad(raw)) // 4, len(raw)) + pad(raw))
        return Extension(reply[9], reply[10], reply[11]) if reply[8] else None

    # ------------------------------------------------------------ packets

    def _packet(self, block: bool) -> bytes | None:
        """The next whole packet from the server; None if none is there yet (``block`` False)."""
        while True:
            if len(self._inbox) >= 32:
                size = 32
                kind = self._inbox[0] & 0x7F
                if kind in (REPLY, GENERIC_EVENT):
                    size += struct.unpack_from("<I", self._inbox, 4)[0] * 4
                    if size > MAX_REPLY:
                        raise WireError(f"the X server announced a reply of {size} bytes "
                                        f"(at most {MAX_REPLY} are read)")
                if len(self._inbox) >= size:
                    packet = bytes(self._inbox[:size])
                    del self._inbox[:size]
                    return packet
            if not self._fill(block):
                return None

    def _fill(self, block: bool) -> bool:
        try:
            # The socket has a timeout, so Python would wait that long even for MSG_DONTWAIT.
            if not block and not select.select([self._sock], [], [], 0)[0]:
                return False
            left = self._deadline - time.monotonic()
            if block and left <= 0:
                raise TimeoutError(f"no whole answer in {self._timeout} s")
            self._sock.settimeout(max(left, 0.001) if block else self._timeout)
            chunk = self._sock.recv(1 << 20)
        except OSError as exc:  # a timeout too: the server stopped answering
            raise WireError(f"the X server did not answer: {exc}") from exc
        if not chunk:
            raise WireError("the X server closed the connection")
        self._inbox += chunk
        return True

    def _take(self, size: int) -> bytes:
        while len(self._inbox) < size:
            self._fill(block=True)
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    # ------------------------------------------------------------ ending

    def abort(self) -> None:
        """From any thread: make a call that waits on the server fail now."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


def _parse_setup(data: bytes) -> Setup:
    """The parts of the connection setup the capture needs: screen 0, its pixel layout."""
    id_base, id_mask = struct.unpack_from("<II", data, 4)
    vendor_length = struct.unpack_from("<H", data, 16)[0]
    screens, formats = data[20], data[21]
    lsb_first = data[22] == 0
    if screens < 1:
        raise WireError("the X server has no screen")
    offset = 32 + len(pad(b"\0" * vendor_length))
    bpp_of = {}
    for _ in range(formats):
        depth, bpp = data[offset], data[offset + 1]
        bpp_of[depth] = bpp
        offset += 8
    root, = struct.unpack_from("<I", data, offset)
    width, height = struct.unpack_from("<HH", data, offset + 20)
    root_visual, = struct.unpack_from("<I", data, offset + 32)
    root_depth, depths = data[offset + 38], data[offset + 39]
    offset += 40
    masks = (0, 0, 0)
    for _ in range(depths):
        visuals, = struct.unpack_from("<H", data, offset + 2)
        offset += 8
        for _ in range(visuals):
            visual, = struct.unpack_from("<I", data, offset)
            if visual == root_visual:
                masks = struct.unpack_from("<III", data, offset + 8)
            offset += 24
    return Setup(root, width, height, root_depth, bpp_of.get(root_depth, 0), lsb_first, masks,
                 id_base, id_mask)
