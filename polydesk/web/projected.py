"""A station shown a projection: the server side of RFB, spoken by the bridge, fed by a relay.

While a session is a projection target (manager/projection.py), its own station is not
connected to its own Xvnc at all: the bridge answers the station itself, with the source's
screen from the relay (relay.py), and reads what the station sends only to know its pixel
format, its encodings and when it wants the next update. Every input message (keys, pointer,
clipboard, resize) is read by the same reader as always (rfbfilter.ClientStream) and dropped:
there is nothing behind this station to reach.

``Relays`` keeps one relay per projected session while any station watches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from polydesk.web.relay import (
    DESKTOP_SIZE,
    PIXEL_FORMAT,
    TIGHT,
    Relay,
    RelayError,
    Version,
    raw_layout,
)
from polydesk.web.rfbfilter import (
    SECURITY_NONE,
    SET_ENCODINGS,
    SET_PIXEL_FORMAT,
    UPDATE_REQUEST,
    VERSION,
    ClientStream,
    Phase,
    ProtocolError,
)


class Relays:
    """One relay per projected session, shared by every station that shows it; closed when the
    last of them goes."""

    def __init__(self, open_rfb: Callable[[str], Awaitable[socket.socket | None]]) -> None:
        self._open_rfb = open_rfb
        self._relays: dict[str, Relay] = {}
        self._watchers: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def watching(self, source_id: str) -> AsyncIterator[Relay]:
        lock = self._locks.setdefault(source_id, asyncio.Lock())
        async with lock:  # thirty stations switching at once start one relay
            relay = self._relays.get(source_id)
            if relay is None or relay.ended.is_set():
                relay = Relay(source_id, lambda: self._open_rfb(source_id))
                await relay.start()
                self._relays[source_id] = relay
            self._watchers[source_id] = self._watchers.get(source_id, 0) + 1
        try:
            yield relay
        finally:
            self._watchers[source_id] -= 1
            if not self._watchers[source_id]:
                del self._watchers[source_id]
                if not lock.locked():
                    self._locks.pop(source_id, None)
                if self._relays.get(source_id) is relay:
                    del self._relays[source_id]
                await relay.close()

    def relay(self, source_id: str) -> Relay | None:
        """The running relay of ``source_id`` (tests, bench)."""
        return self._relays.get(source_id)


@dataclass
class _Wants:
    """What the station asked for: RFB lets the server send an update only when one is wanted."""

    tight: bool = False
    desktop_size: bool = False
    layout: str | None = "RGBX"  # how Raw pixels are laid out for it (relay.raw_layout)
    whole: bool = True
    asked: asyncio.Event = field(default_factory=asyncio.Event)


def _read_messages(canonical: bytes, wants: _Wants) -> None:
    """Take what the station said from the reader's canonical output (known lengths)."""
    at = 0
    while at < len(canonical):
        kind = canonical[at]
        if kind == SET_PIXEL_FORMAT:
            wants.layout = raw_layout(canonical[at + 4:at + 20])
            wants.whole = True
            at += 20
        elif kind == SET_ENCODINGS:
            (count,) = struct.unpack_from(">H", canonical, at + 2)
            encodings = set(struct.unpack_from(f">{count}i", canonical, at + 4))
            wants.tight, wants.desktop_size = TIGHT in encodings, DESKTOP_SIZE in encodings
            at += 4 + 4 * count
        elif kind == UPDATE_REQUEST:
            if canonical[at + 1] == 0:
                wants.whole = True
            wants.asked.set()
            at += 10
        elif kind == 248:  # Fence: the relay never offered fences; nothing to answer
            at += 9 + canonical[at + 8]
        else:  # EnableContinuousUpdates (never offered either): fixed 10 bytes
            at += 10


async def _next(relay: Relay, sent: int, wants: _Wants) -> Version | None:
    """The version to send: the newest at once when the whole screen is wanted, else the first
    newer than ``sent`` (looking again now and then: a request for the whole screen may come)."""
    while not wants.whole:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(relay.newer_than(sent), 0.5)
    return None if relay.ended.is_set() else relay.version


async def serve(ws: WebSocket, relay: Relay, name: str) -> None:
    """Speak RFB to the station as its server, showing ``relay``'s screen, until it goes or the
    relay ends (raises ProtocolError for a station that does not speak RFB 3.8 as expected)."""
    stream = ClientStream(lambda: False)  # nothing it sends is input to anything
    wants = _Wants()
    await ws.send_bytes(VERSION)

    async def receive() -> None:
        phase = stream.phase
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                raise ProtocolError("the bridge carries RFB in binary messages only")
            canonical = stream.feed(data)
            if phase is Phase.VERSION and stream.phase is not Phase.VERSION:
                await ws.send_bytes(b"\x01" + SECURITY_NONE)
            if phase in (Phase.VERSION, Phase.SECURITY) and stream.phase in (Phase.INIT, Phase.MESSAGES):
                await ws.send_bytes(bytes(4))  # SecurityResult: OK
            if phase is not Phase.MESSAGES and stream.phase is Phase.MESSAGES:
                title = name.encode()[:255]
                width, height = relay.version.size
                await ws.send_bytes(struct.pack(">HH", width, height) + PIXEL_FORMAT
                                    + struct.pack(">I", len(title)) + title)
                canonical = canonical[1:]  # the reader's own ClientInit (shared), for Xvnc
            phase = stream.phase
            _read_messages(canonical, wants)

    async def send() -> None:
        sent, size = 0, relay.version.size
        while True:
            await wants.asked.wait()
            version = await _next(relay, sent, wants)
            if version is None:
                return  # the source is gone; the manager ends the projection
            if not wants.tight and wants.layout is None:
                raise ProtocolError("this viewer's pixel format cannot show a projection: "
                                    "use 32-bit colour or a viewer with Tight encoding")
            resized = version.size != size
            if resized and not wants.desktop_size:
                raise ProtocolError("the projected screen changed size and this viewer cannot follow")
            form = "tight" if wants.tight else str(wants.layout)
            version, message = await relay.update(sent, form, whole=wants.whole or resized)
            if resized:
                (count,) = struct.unpack_from(">H", message, 2)
                message = (struct.pack(">BxH", 0, count + 1)
                           + struct.pack(">HHHHi", 0, 0, *version.size, DESKTOP_SIZE) + message[4:])
            wants.asked.clear()
            wants.whole = False
            await ws.send_bytes(message)
            sent, size = version.number, version.size

    tasks = [asyncio.create_task(receive()), asyncio.create_task(send())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["RelayError", "Relays", "serve"]
