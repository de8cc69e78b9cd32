"""One session's screen, read once and handed to every station it is projected to.

The relay is one RFB client of the source session's Xvnc, whatever the number of targets: it
asks for Raw pixels (the cheapest for Xvnc to send, and stateless), keeps the framebuffer, and
numbers each update it gets as a version, with the boxes that version changed.

Stations are sent the screen as the relay encodes it: Tight rectangles in JPEG. Each JPEG
stands alone, with no zlib stream whose state a station that joined late (or skipped an
update) would lack: the trap of relaying Tight or ZRLE as Xvnc encodes them, where every
client must have seen every byte before. So one encoding serves every station: a station one
version behind gets what that version changed, any other (new, slow, or asking for the whole
screen) the whole screen; each is encoded at most once per version, and a slow station only
skips versions. A station that cannot take Tight (a viewer without it) gets Raw instead, in
its own pixel layout if it is one of 32 bits.

Pure protocol and pixels; the source's socket comes from the manager (``open_rfb``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from PIL import Image

from polydesk.thumbnails.geometry import Box, area, bounding, merge_boxes
from polydesk.web.rfbfilter import OPENING

log = logging.getLogger(__name__)

# The relay's pixels, and what it tells stations in ServerInit: 32 bpp, depth 24, little-endian,
# true colour, red in the lowest byte: the bytes of a pixel are R, G, B, X (Pillow's "RGBX").
PIXEL_FORMAT = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 0, 8, 16)
RAW, TIGHT, DESKTOP_SIZE = 0, 7, -223
JPEG_QUALITY = 70  # a projected screen is read at full size: text must stay sharp
BAND = 256  # rows per JPEG: a 4K screen's rectangle stays far below Tight's 4 MiB length limit
MAX_SIDE = 8192
UPDATE_REQUEST = 3


class RelayError(Exception):
    pass


@dataclass(frozen=True)
class Version:
    number: int
    changed: tuple[Box, ...]  # what this version changed since the one before
    size: tuple[int, int]
    resized: bool  # the screen's size changed with this version
    pixels: bytes = field(default=b"", repr=False)  # the whole screen as of this version


def tight_length(size: int) -> bytes:
    """Tight's compact length: 7 bits a byte, low bits first, in at most 3 bytes."""
    if size >= 1 << 22:
        raise ValueError(f"a Tight rectangle of {size} bytes")
    out = bytearray([size & 0x7F])
    if size > 0x7F:
        out[0] |= 0x80
        out.append((size >> 7) & 0x7F)
        if size > 0x3FFF:
            out[1] |= 0x80
            out.append(size >> 14)
    return bytes(out)


def _bands(box: Box) -> list[Box]:
    left, top, right, bottom = box
    return [(left, y, right, min(y + BAND, bottom)) for y in range(top, bottom, BAND)]


class Relay:
    """The source's screen, for as many stations as watch it. ``open_rfb`` connects to it."""

    def __init__(self, source_id: str, open_rfb: Callable[[], Awaitable[socket.socket | None]],
                 fps: float = 25.0) -> None:
        self.source_id = source_id
        self._open_rfb = open_rfb
        self._interval = 1.0 / fps
        self.width = self.height = 0
        self.name = ""
        self._pixels = bytearray()
        self.version = Version(0, (), (0, 0), False)  # version 1 is the first whole screen
        self._changed = asyncio.Condition()
        # (version, whole|change, tight|Raw layout) -> its FramebufferUpdate, being encoded or done
        self._encoded: dict[tuple[int, str, str], asyncio.Future[bytes]] = {}
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.ended = asyncio.Event()
        self.encodes = 0  # how many updates were encoded, for the tests and the bench

    async def start(self) -> None:
        """Connect to the source and read its first whole screen (RelayError if it cannot)."""
        sock = await self._open_rfb()
        if sock is None:
            raise RelayError(f"session {self.source_id} has no screen to project")
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self._writer = writer
        try:
            await asyncio.wait_for(self._handshake(reader, writer), 10)
            await asyncio.wait_for(self._update(reader), 10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, struct.error) as exc:
            writer.close()
            raise RelayError(f"session {self.source_id}: its screen does not answer: {exc!r}") from exc
        self._task = asyncio.create_task(self._follow(reader, writer))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()
        self.ended.set()
        async with self._changed:
            self._changed.notify_all()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(OPENING + b"\x01")  # version 3.8, security None, ClientInit: shared
        await reader.readexactly(12)
        (count,) = await reader.readexactly(1)
        if count == 0:
            raise RelayError("the source's Xvnc refused the connection")
        await reader.readexactly(count)
        if await reader.readexactly(4) != bytes(4):
            raise RelayError("the source's Xvnc refused security type None")
        width, height = struct.unpack(">HH", await reader.readexactly(4))
        await reader.readexactly(16)
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        self.name = (await reader.readexactly(min(length, 4096))).decode(errors="replace")
        self._resize(width, height)
        writer.write(struct.pack(">Bxxx", 0) + PIXEL_FORMAT)  # SetPixelFormat
        writer.write(struct.pack(">BxH2i", 2, 2, RAW, DESKTOP_SIZE))  # SetEncodings
        writer.write(struct.pack(">BBHHHH", UPDATE_REQUEST, 0, 0, 0, width, height))
        await writer.drain()

    def _resize(self, width: int, height: int) -> None:
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise RelayError(f"a screen of {width}x{height}")
        self.width, self.height = width, height
        self._pixels = bytearray(width * height * 4)

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Ask for what changed at most ``fps`` times a second, as long as the source answers."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                asked = loop.time()
                writer.write(struct.pack(">BBHHHH", UPDATE_REQUEST, 1, 0, 0, self.width, self.height))
                await writer.drain()
                await self._update(reader)
                await asyncio.sleep(max(0.0, asked + self._interval - loop.time()))
        except (OSError, asyncio.IncompleteReadError, RelayError, struct.error) as exc:
            log.info("projection of session %s: the source's screen closed: %r", self.source_id, exc)
        finally:
            writer.close()
            self.ended.set()
            async with self._changed:
                self._changed.notify_all()

    async def _update(self, reader: asyncio.StreamReader) -> None:
        """Read server messages up to and including one FramebufferUpdate; apply it."""
        while True:
            (kind,) = await reader.readexactly(1)
            if kind == 0:
                break
            if kind == 2:  # Bell
                continue
            if kind == 3:  # ServerCutText: the source's clipboard stays the source's
                (length,) = struct.unpack(">xxxI", await reader.readexactly(7))
                await reader.readexactly(length & 0x7FFFFFFF)
                continue
            raise RelayError(f"unexpected server message {kind}")
        (count,) = struct.unpack(">xH", await reader.readexactly(3))
        changed: list[Box] = []
        resized = False
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", await reader.readexactly(12))
            if encoding == DESKTOP_SIZE:
                self._resize(w, h)
                changed, resized = [(0, 0, w, h)], True
            elif encoding == RAW:
                if x + w > self.width or y + h > self.height:
                    raise RelayError(f"a rectangle {w}x{h}+{x}+{y} outside the screen")
                self._paint(x, y, w, h, await reader.readexactly(w * h * 4))
                changed.append((x, y, x + w, y + h))
            else:
                raise RelayError(f"unexpected encoding {encoding}")
        if changed:
            await self._publish(tuple(changed), resized)

    def _paint(self, x: int, y: int, w: int, h: int, data: bytes) -> None:
        stride, row = self.width * 4, w * 4
        if x == 0 and w == self.width:
            self._pixels[y * stride:(y + h) * stride] = data
            return
        view = memoryview(data)
        for line in range(h):
            start = (y + line) * stride + x * 4
            self._pixels[start:start + row] = view[line * row:(line + 1) * row]

    async def _publish(self, changed: tuple[Box, ...], resized: bool) -> None:
        old = self.version.number
        # A copy: the next update is read into the framebuffer while stations are sent this one.
        self.version = Version(old + 1, changed, (self.width, self.height), resized, bytes(self._pixels))
        self._encoded = {k: v for k, v in self._encoded.items() if k[0] > old - 1}
        async with self._changed:
            self._changed.notify_all()

    async def newer_than(self, number: int) -> Version | None:
        """The first version after ``number`` (waits for it); None once the source is gone."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version.number > number or self.ended.is_set())
        return None if self.ended.is_set() else self.version

    async def update(self, sent: int, form: str, whole: bool = False) -> tuple[Version, bytes]:
        """The FramebufferUpdate message that brings a station from version ``sent`` to the
        newest: what changed when it is one behind, else the whole screen. ``form``: "tight",
        or the Raw pixel layout the station asked for (``raw_layout``)."""
        version = self.version
        kind = "change" if (not whole and sent == version.number - 1 and not version.resized) else "whole"
        if kind == "change" and bounding(version.changed) == (0, 0, *version.size):
            kind = "whole"  # the whole screen changed: one encoding for both kinds of station
        key = (version.number, kind, form)
        encoding = self._encoded.get(key)
        if encoding is None:  # the first station to want it encodes it; the others wait for it
            boxes = list(version.changed) if kind == "change" else [(0, 0, *version.size)]
            encoding = asyncio.ensure_future(
                asyncio.to_thread(encode_update, version.pixels, version.size[0], boxes, form))
            self._encoded[key] = encoding
            self.encodes += 1
        return version, await asyncio.shield(encoding)


def raw_layout(pixel_format: bytes) -> str | None:
    """How Raw pixels are laid out for a station of this pixel format (SetPixelFormat's 16
    bytes), as Pillow names it ("BGRX"...); None for a format the relay does not write
    (colour maps, 8 and 16 bits: such a viewer needs Tight)."""
    bpp, _depth, big, true, rmax, gmax, bmax, rshift, gshift, bshift = struct.unpack_from(
        ">BBBBHHHBBB", pixel_format)
    shifts = (rshift, gshift, bshift)
    if bpp != 32 or not true or (rmax, gmax, bmax) != (255, 255, 255) or any(s % 8 for s in shifts):
        return None
    places = ["X"] * 4
    for name, shift in zip("RGB", shifts, strict=True):
        places[3 - shift // 8 if big else shift // 8] = name
    layout = "".join(places)
    return layout if layout in ("RGBX", "BGRX", "XRGB", "XBGR") else None


def encode_update(pixels: bytes, width: int, boxes: list[Box], form: str) -> bytes:
    """A FramebufferUpdate of ``boxes`` of the screen (its pixels, ``width`` wide)."""
    around = bounding(boxes)
    assert around is not None
    if len(boxes) > 1 and sum(map(area, boxes)) * 2 >= area(around):
        boxes = [around]
    else:
        boxes = merge_boxes(boxes, limit=8, slack=64 * 64)
    # RGBX maps the pixels as they are (RGB would unpack the whole screen for every update)
    image = Image.frombuffer("RGBX", (width, len(pixels) // (width * 4)), pixels, "raw", "RGBX", 0, 1)
    rects = [_rect(image, band, form) for box in boxes for band in _bands(box)]
    return struct.pack(">BxH", 0, len(rects)) + b"".join(rects)


def _rect(image: Image.Image, box: Box, form: str) -> bytes:
    left, top, right, bottom = box
    head = struct.pack(">HHHH", left, top, right - left, bottom - top)
    part = image.crop(box)
    if form != "tight":
        return head + struct.pack(">i", RAW) + part.convert("RGB").tobytes("raw", form)
    buffer = io.BytesIO()
    part.save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = buffer.getvalue()
    return head + struct.pack(">iB", TIGHT, 0x90) + tight_length(len(jpeg)) + jpeg
