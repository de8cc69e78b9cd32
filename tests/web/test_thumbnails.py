"""The thumbnailer: captures only while watched, one loop per session, re-encodes only on change.

In-process with a stand-in grabber for the rules; tests/web/test_thumbnails_xvnc.py shows the
same on real Xvnc sessions through the daemon.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from polydesk.hosts.base import Screen
from polydesk.thumbnails import SIZES, CaptureError, Thumbnailer, capture, placeholder, scale_base

SCREEN = Screen(display=":99", xauthority="/nonexistent")


class Desk:
    """A screen whose colour the test sets; counts how it is used."""

    def __init__(self) -> None:
        self.color = (40, 90, 160)
        self.opened = 0
        self.closed = 0
        self.grabs = 0
        self.broken = False

    def open(self, screen: Screen) -> Desk:
        if self.broken:
            raise CaptureError("display gone")
        self.opened += 1
        return self

    def grab(self) -> Image.Image:
        if self.broken:
            raise CaptureError("display gone")
        self.grabs += 1
        image = Image.new("RGB", (1280, 800), self.color)
        image.paste((255, 255, 255), (100, 100, 400, 300))
        return image

    def close(self) -> None:
        self.closed += 1


async def wait_until(predicate: object, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_nothing_is_captured_until_someone_looks_and_after_they_stop() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0.3)
    await asyncio.sleep(0.2)
    assert desk.grabs == 0 and thumbs.capturing() == set()
    first = await thumbs.get("1", SCREEN, "medium")
    assert first.version > 0 and first.jpeg[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(first.jpeg)).size == (320, 200)
    assert thumbs.capturing() == {"1"}
    await wait_until(lambda: thumbs.capturing() == set())  # linger over: the loop stops
    await wait_until(lambda: desk.closed == 1)
    assert desk.opened == 1
    grabs = desk.grabs
    await asyncio.sleep(0.2)
    assert desk.grabs == grabs
    await thumbs.close()


async def test_unchanged_pixels_keep_version_and_etag_changed_ones_tell_watchers() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=5)
    watcher = thumbs.watcher()
    watcher.add("1", SCREEN)
    first = await thumbs.get("1", SCREEN, "small")
    assert await asyncio.wait_for(watcher.changed(), 3) == {"1": first.version}  # the first picture
    await wait_until(lambda: desk.grabs >= 4)
    again = await thumbs.get("1", SCREEN, "small")
    assert again is first  # not re-encoded: the same object from the cache
    desk.color = (200, 30, 30)
    changed = await asyncio.wait_for(watcher.changed(), 3)
    assert list(changed) == ["1"] and changed["1"] > first.version
    newer = await thumbs.get("1", SCREEN, "small")
    assert newer.version == changed["1"] and newer.etag != first.etag
    watcher.close()
    await thumbs.close()


async def test_one_loop_per_session_shared_by_every_watcher() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0)
    watchers = [thumbs.watcher() for _ in range(5)]
    for watcher in watchers:
        watcher.add("1", SCREEN)
    await wait_until(lambda: desk.grabs >= 5)
    assert desk.opened == 1 and thumbs.capturing() == {"1"}
    grabs, started = desk.grabs, asyncio.get_running_loop().time()
    await asyncio.sleep(0.5)
    rate = (desk.grabs - grabs) / (asyncio.get_running_loop().time() - started)
    assert rate < 1 / 0.05 * 1.5  # one loop's pace, not five
    desk.color = (0, 200, 0)
    for watcher in watchers:
        assert list(await asyncio.wait_for(watcher.changed(), 3)) == ["1"]
    for watcher in watchers[:-1]:
        watcher.close()
    await asyncio.sleep(0.2)
    assert thumbs.capturing() == {"1"}
    watchers[-1].close()
    await wait_until(lambda: thumbs.capturing() == set() and desk.closed == 1)
    await thumbs.close()


async def test_no_screen_or_a_failed_capture_gives_the_placeholder() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0.2)
    for size in SIZES:
        assert await thumbs.get("1", None, size) == placeholder(size)
    assert desk.opened == 0
    desk.broken = True
    assert await thumbs.get("2", SCREEN, "large") == placeholder("large")
    await wait_until(lambda: thumbs.capturing() == set())
    desk.broken = False
    assert (await thumbs.get("2", SCREEN, "large")).version > 0  # a later request starts afresh
    with pytest.raises(ValueError):
        await thumbs.get("2", SCREEN, "huge")
    await thumbs.close()


def test_placeholder_says_so() -> None:
    image = Image.open(io.BytesIO(placeholder("medium").jpeg))
    assert image.size == (320, 200)
    low, high = image.convert("L").getextrema()
    assert high - low > 60  # some text on the grey


def test_scaling_keeps_the_aspect_and_never_enlarges() -> None:
    assert scale_base(Image.new("RGB", (1280, 800))).size == (480, 300)
    assert scale_base(Image.new("RGB", (1920, 1080))).size == (480, 270)
    assert scale_base(Image.new("RGB", (400, 300))).size == (400, 300)


def test_capture_rejects_pixel_formats_it_does_not_know() -> None:
    class Reply:
        depth, data = 8, b"\0" * 16

    class Geometry:
        width, height = 4, 4

    class Root:
        def get_geometry(self) -> Geometry:
            return Geometry()

        def get_image(self, *args: object) -> Reply:
            return Reply()

    class Format:
        depth, bits_per_pixel = 8, 8

    class Conn:
        class display:
            class info:
                pixmap_formats = [Format()]
                image_byte_order = 0

        def screen(self) -> object:
            return type("S", (), {"root": Root()})()

    with pytest.raises(CaptureError, match="depth 8"):
        capture(Conn())
