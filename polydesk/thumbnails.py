"""Live thumbnails: capture -> scale -> encode, only on change, shared by all watchers.

One capture loop per session, started by the first watcher and stopped when the
last one leaves. A watcher is a Dashboard's event stream (``Watcher``) or a
recent thumbnail request (it keeps the loop alive for ``linger`` seconds), so
nothing is captured while nobody looks. Each capture is scaled down once to the
largest thumbnail width; only when those pixels differ from the last ones is the
version bumped, the watchers told, and the JPEGs re-encoded (lazily, per size,
when someone asks for that size).

The capture itself is one small function, ``capture``, over a python-xlib
connection opened with the session's own X cookie; issue 5 replaces it with
DAMAGE + MIT-SHM without touching the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image, ImageChops, ImageDraw, ImageFont

from polydesk.hosts.base import Screen

log = logging.getLogger(__name__)

SIZES: dict[str, int] = {"small": 160, "medium": 320, "large": 480}
BASE_WIDTH = max(SIZES.values())
JPEG_QUALITY = 70
PLACEHOLDER_TEXT = "no picture"


class CaptureError(Exception):
    """The session's screen could not be read (display gone, cookie refused, odd pixel format)."""


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    etag: str  # a quoted HTTP entity tag: a hash of the JPEG
    version: int  # 0 for the placeholder; otherwise unique for this daemon's life


class Grabber(Protocol):
    """An open connection to one session's screen."""

    def grab(self) -> Image.Image: ...

    def close(self) -> None: ...


def capture(conn: Any) -> Image.Image:
    """The whole root window of ``conn`` (a python-xlib Display) as an RGB image."""
    root = conn.screen().root
    geometry = root.get_geometry()
    reply = root.get_image(0, 0, geometry.width, geometry.height, 2, 0xFFFFFFFF)  # 2 = ZPixmap
    info = conn.display.info
    bpp = next((f.bits_per_pixel for f in info.pixmap_formats if f.depth == reply.depth), None)
    lsb_first = info.image_byte_order == 0
    if bpp == 32:
        rawmode = "BGRX" if lsb_first else "XRGB"
    elif bpp == 16 and reply.depth == 16 and lsb_first:
        rawmode = "BGR;16"
    else:
        raise CaptureError(f"unsupported pixel format: depth {reply.depth}, {bpp} bits per pixel")
    size = (geometry.width, geometry.height)
    return Image.frombuffer("RGB", size, reply.data, "raw", rawmode, 0, 1)


class XGrabber:
    """Grabs with python-xlib GetImage over a connection kept open between captures."""

    def __init__(self, screen: Screen) -> None:
        from pathlib import Path

        from Xlib import error as xerror

        from polydesk.hosts.x11 import X11Error, open_display

        self._errors: tuple[type[BaseException], ...] = (
            xerror.XError, xerror.ConnectionClosedError, X11Error, OSError,
        )
        try:
            self._conn = open_display(screen.display, Path(screen.xauthority))
        except self._errors as exc:
            raise CaptureError(f"cannot open {screen.display}: {exc}") from exc

    def grab(self) -> Image.Image:
        try:
            return capture(self._conn)
        except self._errors as exc:
            raise CaptureError(f"cannot read the screen: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._conn.close()


def scale_base(image: Image.Image) -> Image.Image:
    """Down to BASE_WIDTH (never up): a cheap integer reduce, then one bilinear step."""
    if image.width <= BASE_WIDTH:
        return image
    factor = image.width // BASE_WIDTH
    if factor > 1:
        image = image.reduce(factor)
    height = max(1, round(image.height * BASE_WIDTH / image.width))
    return image.resize((BASE_WIDTH, height), Image.Resampling.BILINEAR)


def encode(base: Image.Image, size: str, version: int) -> Thumbnail:
    width = min(SIZES[size], base.width)
    image = base
    if width != base.width:
        image = base.resize((width, max(1, round(base.height * width / base.width))),
                            Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = buffer.getvalue()
    return Thumbnail(jpeg, f'"{hashlib.blake2b(jpeg, digest_size=12).hexdigest()}"', version)


@functools.lru_cache(maxsize=64)
def placeholder(size: str, text: str = PLACEHOLDER_TEXT) -> Thumbnail:
    """A grey 16:10 card saying there is no picture, or why (a host's reason: a Wayland session)."""
    width = SIZES[size]
    image = Image.new("RGB", (width, width * 10 // 16), (60, 64, 72))
    draw = ImageDraw.Draw(image)
    short = text == PLACEHOLDER_TEXT
    font = ImageFont.load_default(size=max(10, width // (12 if short else 18)))
    lines = _wrap(draw, text, font, width - 16)
    step = font.size * 1.25 if isinstance(font, ImageFont.FreeTypeFont) else 12
    top = width * 5 / 16 - step * (len(lines) - 1) / 2
    for number, line in enumerate(lines):
        draw.text((width / 2, top + number * step), line, fill=(200, 204, 212), font=font, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = buffer.getvalue()
    return Thumbnail(jpeg, f'"p-{hashlib.blake2b(jpeg, digest_size=12).hexdigest()}"', 0)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


class Watcher:
    """One subscriber (a Dashboard page): the sessions it watches and those that changed since."""

    def __init__(self, thumbnails: Thumbnailer) -> None:
        self._thumbnails = thumbnails
        self.sessions: set[str] = set()
        self._changed: set[str] = set()
        self._event = asyncio.Event()

    def add(self, session_id: str, screen: Screen | None) -> None:
        if screen is None or session_id in self.sessions:
            return
        self.sessions.add(session_id)
        self._thumbnails._attach(self, session_id, screen)

    def remove(self, session_id: str) -> None:
        if session_id in self.sessions:
            self.sessions.discard(session_id)
            self._changed.discard(session_id)
            self._thumbnails._detach(self, session_id)

    def close(self) -> None:
        for session_id in list(self.sessions):
            self.remove(session_id)

    def _notify(self, session_id: str) -> None:
        self._changed.add(session_id)
        self._event.set()

    async def changed(self) -> dict[str, int]:
        """Wait for changes; {session id: new version} of every watched session that changed."""
        await self._event.wait()
        self._event.clear()
        changed, self._changed = self._changed, set()
        return {sid: self._thumbnails.version(sid) for sid in changed}


@dataclass
class _Feed:
    session_id: str
    screen: Screen
    grabber: Grabber | None = None
    base: Image.Image | None = None
    version: int = 0
    captured_at: float = 0.0
    last_get: float = 0.0
    encoded: dict[str, Thumbnail] = field(default_factory=dict)
    watchers: set[Watcher] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Thumbnailer:
    def __init__(
        self,
        open_grabber: Callable[[Screen], Grabber] = XGrabber,
        interval: float = 1.0,
        linger: float = 10.0,
    ) -> None:
        self._open = open_grabber
        self.interval = interval
        self.linger = linger
        self._feeds: dict[str, _Feed] = {}
        self._versions = itertools.count(1)

    def watcher(self) -> Watcher:
        return Watcher(self)

    def capturing(self) -> set[str]:
        """The sessions whose capture loop runs now (for tests and metrics)."""
        return {sid for sid, feed in self._feeds.items() if feed.task is not None}

    def version(self, session_id: str) -> int:
        feed = self._feeds.get(session_id)
        return feed.version if feed else 0

    async def get(self, session_id: str, screen: Screen | None, size: str) -> Thumbnail:
        """The current thumbnail at ``size``; keeps the session captured for ``linger`` seconds."""
        if size not in SIZES:
            raise ValueError(f"unknown thumbnail size {size!r}")
        if screen is None:
            return placeholder(size)
        feed = self._feed(session_id, screen)
        feed.last_get = time.monotonic()
        self._ensure_running(feed)
        if feed.base is None:
            await self._refresh(feed)
        async with feed.lock:
            base = feed.base
            if base is None:
                return placeholder(size)
            cached = feed.encoded.get(size)
            if cached is None:
                cached = await asyncio.to_thread(encode, base, size, feed.version)
                feed.encoded[size] = cached
            return cached

    async def close(self) -> None:
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # watchers

    def _attach(self, watcher: Watcher, session_id: str, screen: Screen) -> None:
        feed = self._feed(session_id, screen)
        feed.watchers.add(watcher)
        self._ensure_running(feed)

    def _detach(self, watcher: Watcher, session_id: str) -> None:
        feed = self._feeds.get(session_id)
        if feed is not None:
            feed.watchers.discard(watcher)  # the loop notices it is no longer wanted

    # the capture loop

    def _feed(self, session_id: str, screen: Screen) -> _Feed:
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = _Feed(session_id, screen)
        return feed

    def _wanted(self, feed: _Feed) -> bool:
        return bool(feed.watchers) or time.monotonic() - feed.last_get < self.linger

    def _ensure_running(self, feed: _Feed) -> None:
        if feed.task is None:
            feed.task = asyncio.create_task(self._run(feed), name=f"thumbnails {feed.session_id}")

    async def _run(self, feed: _Feed) -> None:
        try:
            while self._wanted(feed):
                ok = await self._refresh(feed, fresh_within=self.interval * 0.9)
                if not ok and not feed.watchers:
                    break  # the display is gone or refuses us: the next request starts afresh
                await asyncio.sleep(self.interval)
        finally:
            # Leave the table before the first await, so a request arriving meanwhile makes a new feed.
            if self._feeds.get(feed.session_id) is feed:
                del self._feeds[feed.session_id]
            feed.task = None
            grabber, feed.grabber = feed.grabber, None
            if grabber is not None:
                await asyncio.shield(asyncio.to_thread(grabber.close))

    async def _refresh(self, feed: _Feed, fresh_within: float = 0.0) -> bool:
        """Capture once; bump the version and tell the watchers if the picture changed."""
        async with feed.lock:
            if fresh_within and time.monotonic() - feed.captured_at < fresh_within:
                return True  # a request captured meanwhile
            try:
                if feed.grabber is None:
                    feed.grabber = await asyncio.to_thread(self._open, feed.screen)
                image = await asyncio.to_thread(_grab_base, feed.grabber)
            except CaptureError as exc:
                log.info("no thumbnail for session %s: %s", feed.session_id, exc)
                grabber, feed.grabber = feed.grabber, None
                if grabber is not None:
                    await asyncio.to_thread(grabber.close)  # reconnect on the next try
                return False
            finally:
                feed.captured_at = time.monotonic()
            if feed.base is not None and not await asyncio.to_thread(_differs, feed.base, image):
                return True
            feed.base = image
            feed.version = next(self._versions)
            feed.encoded.clear()
        for watcher in list(feed.watchers):
            watcher._notify(feed.session_id)
        return True


def _grab_base(grabber: Grabber) -> Image.Image:
    return scale_base(grabber.grab())


def _differs(old: Image.Image, new: Image.Image) -> bool:
    return old.size != new.size or ImageChops.difference(old, new).getbbox() is not None
