"""Live thumbnails: change-driven capture, shared by every watcher, nothing while nobody looks.

One *feed* per session, started by the first watcher (a Dashboard's event
stream, ``Watcher``) or thumbnail request, and stopped once no watcher is left
and no request came for ``linger`` seconds; its X connection closes with it.

While it runs, a feed sleeps until the X server says the screen changed (the
connection's socket becomes readable: a DAMAGE event, see ``capture``). Then,
as soon as its budget allows (``pacing``: the first change after a quiet spell at
once, a screen that changes whole all the time about one picture per ``interval``
and a half), it asks which rectangles changed, reads only those (through MIT-SHM),
scales only them into each thumbnail size in use (``picture.Scale``), and if any
thumbnail pixel changed, bumps the version and tells the watchers. JPEGs are
encoded lazily, once per version and size, when someone asks. An unchanged screen
costs nothing at all: no event, no wake-up.

Pacing also as Epoptes does it: after a new version, the next one is made only
once someone fetched it (or ``consume_wait`` passed), so a Dashboard that
cannot keep up, or hides that card, is not sent pictures it will not look at.

The other modules here: ``capture`` reads a screen, ``bases`` brings a session's
thumbnails up to date from it, ``picture`` scales and encodes, ``patches`` decides
what a watcher is sent, ``pacing`` when a screen is looked at again, ``watcher`` is a
subscriber, ``geometry`` the boxes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from PIL import Image

from polydesk.core.screen import Screen
from polydesk.thumbnails.bases import update
from polydesk.thumbnails.capture import CaptureError, Reader, ScreenReader
from polydesk.thumbnails.geometry import Box
from polydesk.thumbnails.pacing import GATHER_S, Budget
from polydesk.thumbnails.patches import History, Patch, histories, to_send
from polydesk.thumbnails.picture import (
    PLACEHOLDER_TEXT,
    SIZES,
    Thumbnail,
    encode,
    jpeg_of,
    placeholder,
    placeholder_size,
)
from polydesk.thumbnails.watcher import Watcher

__all__ = ["PLACEHOLDER_TEXT", "SIZES", "CaptureError", "Patch", "Reader", "Thumbnail", "Thumbnailer",
           "Watcher", "placeholder"]

log = logging.getLogger(__name__)

DEFAULT_SIZE = "medium"  # what the Dashboard shows until a request says otherwise
X_TIMEOUT_S = 5.0  # a capture longer than this means a stuck X server: give up on it
RETRY_S = 2.0  # after a failed capture, while watched
SIZE_LINGER_S = 60.0  # a thumbnail size nobody asked for this long is no longer kept up to date

T = TypeVar("T")


@dataclass
class _Feed:
    session_id: str
    screen: Screen
    budget: Budget  # when the screen may be looked at again
    reader: Reader | None = None
    bases: dict[str, Image.Image] = field(default_factory=dict)  # size -> picture; replaced, never changed
    sizes: dict[str, float] = field(default_factory=dict)  # size -> when last asked for
    version: int = 0
    served: int = 0  # the newest version someone fetched
    encoded: dict[str, Thumbnail] = field(default_factory=dict)
    history: dict[str, History] = field(default_factory=dict)  # size -> what each version changed
    patches: dict[tuple[str, Box], Patch] = field(default_factory=dict)  # of this version, by size and part
    captured_at: float = 0.0
    last_get: float = 0.0
    damaged: bool = True  # the screen may differ from the bases: look at the next chance
    listening: int | None = None  # the fd the event loop watches for us
    failed: bool = False
    watchers: set[Watcher] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Thumbnailer:
    def __init__(
        self,
        open_reader: Callable[[Screen], Reader] = ScreenReader,
        interval: float = 1.0,
        linger: float = 10.0,
        consume_wait: float = 5.0,
    ) -> None:
        self._open = open_reader
        self.interval = interval  # each feed's budget: one whole screen per interval (pacing)
        self.linger = linger
        self.consume_wait = consume_wait
        self._feeds: dict[str, _Feed] = {}
        self._versions = itertools.count(1)
        # X work runs here, not in the default executor: a stuck X server must not starve
        # the session backends' threads. Two: a capture takes ~0.5 ms, more threads only fight
        # over the GIL, and a server that stops answering holds one for X_TIMEOUT_S at most.
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="thumbnails")
        self.frames = 0  # thumbnails made (new versions), for the benchmark and metrics
        # CPU time of capturing, scaling and encoding, per thread: each thread adds to its own
        # slot, so no lock is taken on every frame (metrics read the sum).
        self._cpu: dict[int, float] = {}

    def watcher(self) -> Watcher:
        return Watcher(self)

    @property
    def cpu_seconds(self) -> float:
        """CPU time spent capturing, scaling and encoding thumbnails (for metrics)."""
        return sum(list(self._cpu.values()))

    def capturing(self) -> set[str]:
        """The sessions whose feed runs now (for tests and metrics)."""
        return {sid for sid, feed in self._feeds.items() if feed.task is not None}

    def version(self, session_id: str) -> int:
        feed = self._feeds.get(session_id)
        return feed.version if feed else 0

    async def get(self, session_id: str, screen: Screen | None, size: str) -> Thumbnail:
        """The current thumbnail at ``size``; keeps the session captured for ``linger`` seconds."""
        feed, base = await self._base(session_id, screen, size)
        if feed is None or base is None:
            return placeholder(size)
        thumb = feed.encoded.get(size)
        if thumb is None or thumb.version != feed.version:
            # In the loop's thread: a 320x200 JPEG takes ~0.15 ms, less than a thread hop.
            thumb = feed.encoded[size] = self._timed(encode, base, feed.version)
        self._taken(feed)
        return thumb

    async def patch(self, session_id: str, screen: Screen | None, size: str, since: int | None,
                    no_picture: str = PLACEHOLDER_TEXT) -> Patch | None:
        """What a watcher holding version ``since`` of this thumbnail at ``size`` (None: nothing
        at this size; versions number screens, not sizes) needs to have the current one: the
        part that changed since, the whole picture when ``since`` is too old, or None when it
        is up to date. Shared by every watcher: a part is encoded once per version. Counts as
        the picture taken (pacing), as ``get``."""
        feed, base = await self._base(session_id, screen, size)
        if feed is None or base is None:
            if since == 0:
                return None
            card = placeholder_size(size)
            return Patch(0, (0, 0, *card), card, placeholder(size, no_picture).jpeg)
        box = to_send(feed.history.get(size), since, base.size)
        if box is None:
            return None
        patch = feed.patches.get((size, box))  # emptied by every new version (_record)
        if patch is None:
            part_of = base if box == (0, 0, *base.size) else base.crop(box)
            jpeg = self._timed(jpeg_of, part_of, base.width)
            patch = feed.patches[(size, box)] = Patch(feed.version, box, base.size, jpeg)
        self._taken(feed)
        return patch

    async def _base(self, session_id: str, screen: Screen | None, size: str
                    ) -> tuple[_Feed | None, Image.Image | None]:
        """The session's feed, kept running, and its current picture at ``size`` (made now if
        this is the first ask at that size); (None, None) without a screen."""
        if size not in SIZES:
            raise ValueError(f"unknown thumbnail size {size!r}")
        if screen is None:
            return None, None
        feed = self._feed(session_id, screen)
        now = time.monotonic()
        feed.last_get = feed.sizes[size] = now
        self._ensure_running(feed)
        if size not in feed.bases:
            await self._refresh(feed, unless=size)  # the first picture, or the first at this size
        return feed, feed.bases.get(size)

    @staticmethod
    def _taken(feed: _Feed) -> None:
        if feed.version > feed.served:
            feed.served = feed.version
            feed.wake.set()  # the feed may be waiting for this picture to be taken

    async def close(self) -> None:
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # watchers

    def _attach(self, watcher: Watcher, session_id: str, screen: Screen) -> None:
        feed = self._feed(session_id, screen)
        feed.watchers.add(watcher)
        self._ensure_running(feed)

    def _detach(self, watcher: Watcher, session_id: str) -> None:
        feed = self._feeds.get(session_id)
        if feed is not None:
            feed.watchers.discard(watcher)
            feed.wake.set()  # the feed checks whether it is still wanted

    # the feed

    def _feed(self, session_id: str, screen: Screen) -> _Feed:
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = _Feed(session_id, screen, Budget.every(self.interval))
        return feed

    def _wanted(self, feed: _Feed) -> bool:
        return bool(feed.watchers) or time.monotonic() - feed.last_get < self.linger

    def _ensure_running(self, feed: _Feed) -> None:
        if feed.task is None:
            feed.task = asyncio.create_task(self._run(feed), name=f"thumbnails {feed.session_id}")

    async def _run(self, feed: _Feed) -> None:
        try:
            while self._wanted(feed):
                if feed.damaged or feed.reader is None:
                    await self._pace(feed)
                    if not self._wanted(feed):
                        break
                    await self._refresh(feed)
                    if feed.failed and not feed.watchers:
                        break  # the display is gone or refuses us: the next request starts afresh
                    if feed.failed:
                        await self._wait(feed, RETRY_S)
                        continue
                if feed.reader is not None and feed.reader.fileno() is None:
                    feed.damaged = True  # no change signal from this screen: poll, as the budget allows
                elif not feed.damaged:
                    await self._wait(feed, None)
        finally:
            # Leave the table before the first await, so a request arriving meanwhile makes a new feed.
            if self._feeds.get(feed.session_id) is feed:
                del self._feeds[feed.session_id]
            feed.task = None
            self._stop_listening(feed)
            reader, feed.reader = feed.reader, None
            if reader is not None:
                await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._pool, reader.close))

    async def _wait(self, feed: _Feed, timeout: float | None) -> None:
        """Until something happens to the feed (damage, a watcher leaving, a picture taken) or
        ``timeout``; without watchers, at most until the last request's linger runs out."""
        if not feed.watchers:
            left = max(0.0, feed.last_get + self.linger - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        feed.wake.clear()
        self._listen(feed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.wake.wait(), timeout)

    async def _pace(self, feed: _Feed) -> None:
        """Once the feed's budget allows a look (``pacing``), a moment after the change began
        (one redraw, one picture), and (Epoptes) only once the last picture was taken."""
        await asyncio.sleep(max(GATHER_S, feed.budget.wait(time.monotonic())))
        deadline = feed.captured_at + self.consume_wait
        while feed.watchers and feed.served < feed.version and self._wanted(feed):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            feed.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), left)

    def _listen(self, feed: _Feed) -> None:
        """Have the event loop wake the feed when the X server sends something."""
        if feed.reader is None or feed.listening is not None:
            return
        fd = feed.reader.fileno()
        if fd is None:
            return
        feed.listening = fd
        asyncio.get_running_loop().add_reader(fd, self._readable, feed)

    def _readable(self, feed: _Feed) -> None:
        # The capture thread reads the connection; stop watching until it has.
        self._stop_listening(feed)
        feed.damaged = True
        feed.wake.set()

    def _stop_listening(self, feed: _Feed) -> None:
        if feed.listening is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(feed.listening)
            feed.listening = None

    async def _refresh(self, feed: _Feed, unless: str | None = None) -> None:
        """Look at the screen once; a new version (and the watchers told) if a thumbnail changed.
        ``unless`` a picture at that size exists by the time it is our turn."""
        async with feed.lock:
            if unless is not None and unless in feed.bases:
                return
            self._stop_listening(feed)
            now = time.monotonic()
            sizes = {s for s, asked in feed.sizes.items() if now - asked < SIZE_LINGER_S} or {DEFAULT_SIZE}
            try:
                if feed.reader is None:
                    feed.reader = await self._in_pool(None, self._open, feed.screen)
                    feed.bases = {}
                bases, parts, feed.damaged, read = await self._in_pool(
                    feed.reader, update, feed.reader, feed.bases, sizes)
                feed.failed = False
                feed.budget.spend(read, time.monotonic())
            except CaptureError as exc:
                log.info("no thumbnail for session %s: %s", feed.session_id, exc)
                feed.failed, feed.damaged = True, True
                reader, feed.reader = feed.reader, None
                if reader is not None:
                    await self._in_pool(None, reader.close)  # reconnect on the next try
                return
            finally:
                feed.captured_at = time.monotonic()
            changed = any(part is not None for part in parts.values())
            if changed:
                feed.version = next(self._versions)
                self.frames += 1
            # Publish the new bases, and what the version changed in each, for patches.
            feed.history = histories(feed.bases, feed.history, feed.version, bases, parts, changed)
            feed.bases = bases
            if changed:
                feed.patches = {}  # of the version before
            self._listen(feed)  # a request's refresh: the feed's own loop may be asleep
            if feed.damaged:
                feed.wake.set()
        if changed:
            for watcher in list(feed.watchers):
                watcher._notify(feed.session_id)

    def _timed(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)``, its thread's CPU time added to ``cpu_seconds``."""
        start = time.thread_time()
        try:
            return function(*args)
        finally:
            spent = time.thread_time() - start
            thread = threading.get_ident()
            self._cpu[thread] = self._cpu.get(thread, 0.0) + spent

    async def _in_pool(self, reader: Reader | None, function: Callable[..., T], *args: object) -> T:
        """Run X work in the pool; a server that does not answer within X_TIMEOUT_S is cut off
        (a timer, not wait_for: this runs for every frame, and the timer is the cheap way)."""
        loop = asyncio.get_running_loop()
        fired = False

        def cut_off() -> None:
            nonlocal fired
            fired = True
            if reader is not None:
                reader.abort()  # the stuck call fails now (an open times out by itself)

        watchdog = loop.call_later(X_TIMEOUT_S, cut_off)
        try:
            result = await loop.run_in_executor(self._pool, self._timed, function, *args)
        except CaptureError:
            if fired:
                raise CaptureError(f"the X server did not answer within {X_TIMEOUT_S} s") from None
            raise
        finally:
            watchdog.cancel()
        if fired:
            raise CaptureError(f"the X server did not answer within {X_TIMEOUT_S} s")
        return result

