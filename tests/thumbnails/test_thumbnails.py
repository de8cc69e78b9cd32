"""The thumbnailer: captures only while watched, one feed per session, only what changed.

In-process with a stand-in screen (``Desk``) for the rules; tests/thumbnails/test_thumbnails_xvnc.py
shows the same on real Xvnc sessions, in-process and through the daemon.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from polydesk.core.screen import Screen
from polydesk.thumbnails import feed as thumbnails_module
from polydesk.thumbnails.capture import CaptureError
from polydesk.thumbnails.feed import Thumbnailer
from polydesk.thumbnails.geometry import Box, merge_boxes
from polydesk.thumbnails.patches import History
from polydesk.thumbnails.picture import SIZES, Scale, placeholder, same, thumb_size
from polydesk.thumbnails.watcher import Watcher
from tests.harness import await_for

SCREEN = Screen(display=":99", xauthority="/nonexistent")


class Desk:
    """A screen the test paints on. With ``signal`` it says when it changed (as DAMAGE
    does, through a pipe the event loop watches) and which boxes; without, it is polled."""

    def __init__(self, signal: bool = True) -> None:
        self.size = (1280, 800)
        self.image = Image.new("RGB", self.size, (40, 90, 160))
        self.image.paste((255, 255, 255), (100, 100, 400, 300))
        self.opened = self.closed = self.reads = 0
        self.read_boxes: list[Box | None] = []
        self.broken = False
        self.stuck = False
        self.signal = signal
        # the thumbnailer reads in its thread pool while the test paints: a read sees
        # the screen before or after a paint (or a group of them), never half of one
        self.lock = threading.RLock()
        self._damage: list[Box] | None = None  # None: everything (the first look)
        self._pipe = os.pipe() if signal else None
        if self._pipe is not None:
            os.set_blocking(self._pipe[0], False)

    def open(self, screen: Screen) -> Desk:
        if self.broken:
            raise CaptureError("display gone")
        self.opened += 1
        return self

    def paint(self, color: tuple[int, int, int], box: Box | None = None) -> None:
        box = box or (0, 0, *self.size)
        with self.lock:
            self.image.paste(color, box)
            if self._damage is not None:
                self._damage.append(box)
            if self._pipe is not None:
                os.write(self._pipe[1], b"!")

    def fileno(self) -> int | None:
        return self._pipe[0] if self._pipe is not None else None

    def changes(self) -> list[Box] | None:
        if self.broken:
            raise CaptureError("display gone")
        if self._pipe is not None:
            while True:
                try:
                    if not os.read(self._pipe[0], 100):
                        break
                except BlockingIOError:
                    break
        with self.lock:
            damage, self._damage = self._damage, []
        if damage is None or not self.signal:
            return None
        return merge_boxes(damage)  # as capture.ScreenReader does

    def settle(self) -> bool:
        return bool(self._damage)

    def read(self, box: Box | None = None) -> Image.Image:
        if self.broken:
            raise CaptureError("display gone")
        while self.stuck:
            import time

            time.sleep(0.01)  # a server that stopped answering, until abort()
        with self.lock:
            self.reads += 1
            self.read_boxes.append(box)
            return self.image.crop(box or (0, 0, *self.size))

    def abort(self) -> None:
        self.stuck = False
        self.broken = True

    def close(self) -> None:
        self.closed += 1
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


async def watching(desk: Desk, **timing: float) -> tuple[Thumbnailer, Watcher]:
    """A thumbnailer on ``desk`` and a watcher of its session "1", past the first picture."""
    thumbs = Thumbnailer(desk.open, **timing)
    watcher = thumbs.watcher()
    watcher.add("1", SCREEN)
    await asyncio.wait_for(watcher.changed(), 3)
    return thumbs, watcher
def picture(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg)).convert("RGB")


async def test_nothing_is_captured_until_someone_looks_and_after_they_stop() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0.3)
    await asyncio.sleep(0.2)
    assert desk.reads == 0 and thumbs.capturing() == set()
    first = await thumbs.get("1", SCREEN, "medium")
    assert first.version > 0 and first.jpeg[:3] == b"\xff\xd8\xff"
    assert picture(first.jpeg).size == (320, 200)
    assert thumbs.capturing() == {"1"}
    await await_for(lambda: thumbs.capturing() == set(), timeout=3)  # linger over: the feed stops
    await await_for(lambda: desk.closed == 1, timeout=3)
    assert desk.opened == 1
    reads = desk.reads
    desk.paint((200, 0, 0))
    await asyncio.sleep(0.2)
    assert desk.reads == reads
    await thumbs.close()


async def test_a_still_screen_is_not_read_again() -> None:
    desk = Desk()
    thumbs, watcher = await watching(desk, interval=0.02, linger=5)
    reads = desk.reads
    await asyncio.sleep(0.3)  # fifteen intervals: a poller would have read fifteen times
    assert desk.reads == reads
    watcher.close()
    await thumbs.close()


async def test_only_the_changed_part_is_read_and_the_result_equals_a_full_scaling() -> None:
    desk = Desk()
    thumbs, watcher = await watching(desk, interval=0.02, linger=5)
    for size in SIZES:
        await thumbs.get("1", SCREEN, size)  # every size in use
    await await_for(lambda: not thumbs._feeds["1"].damaged, timeout=3)
    desk.read_boxes.clear()
    desk.paint((250, 200, 0), (700, 500, 760, 530))
    await asyncio.wait_for(watcher.changed(), 3)
    assert len(desk.read_boxes) == 1
    box = desk.read_boxes[0]
    assert box is not None
    assert box[0] <= 700 and box[1] <= 500 and box[2] >= 760 and box[3] >= 530
    assert (box[2] - box[0]) * (box[3] - box[1]) < 100 * 60  # a small margin, not the screen
    for size, width in SIZES.items():
        expected = Scale(desk.size, thumb_size(desk.size, width)).whole(desk.image)
        assert same(thumbs._feeds["1"].bases[size], expected)
    watcher.close()
    await thumbs.close()


async def test_unchanged_pixels_keep_version_and_etag_changed_ones_tell_watchers() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.02, linger=5)
    watcher = thumbs.watcher()
    watcher.add("1", SCREEN)
    first = await thumbs.get("1", SCREEN, "small")
    assert await asyncio.wait_for(watcher.changed(), 3) == {"1": first.version}  # the first picture
    reads = desk.reads
    with desk.lock:  # damage, but the same pixels as before
        desk.paint((100, 100, 100), (100, 100, 400, 300))
        desk.paint((255, 255, 255), (100, 100, 400, 300))
    await await_for(lambda: desk.reads > reads and not thumbs._feeds["1"].damaged, timeout=3)
    again = await thumbs.get("1", SCREEN, "small")
    assert again is first  # not re-encoded: the same object from the cache
    desk.paint((200, 30, 30))
    changed = await asyncio.wait_for(watcher.changed(), 3)
    assert list(changed) == ["1"] and changed["1"] > first.version
    newer = await thumbs.get("1", SCREEN, "small")
    assert newer.version == changed["1"] and newer.etag != first.etag
    r, g, b = picture(newer.jpeg).getpixel((80, 50))
    assert r > 170 and g < 60 and b < 60
    watcher.close()
    await thumbs.close()


async def test_one_feed_per_session_shared_by_every_watcher() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0)
    watchers = [thumbs.watcher() for _ in range(5)]
    for watcher in watchers:
        watcher.add("1", SCREEN)
    for watcher in watchers:
        await asyncio.wait_for(watcher.changed(), 3)
    assert desk.opened == 1 and thumbs.capturing() == {"1"}
    reads = desk.reads
    for _ in range(10):  # changes faster than the interval: one loop's pace, not five
        desk.paint((random.randrange(256), 0, 0), (0, 0, 50, 50))
        await asyncio.sleep(0.01)
        await thumbs.get("1", SCREEN, "medium")
    await asyncio.sleep(0.1)
    assert desk.reads - reads <= 0.2 / 0.05 + 2
    desk.paint((0, 200, 0))
    for watcher in watchers:
        assert list(await asyncio.wait_for(watcher.changed(), 3)) == ["1"]
    for watcher in watchers[:-1]:
        watcher.close()
    await asyncio.sleep(0.1)
    assert thumbs.capturing() == {"1"}
    watchers[-1].close()
    await await_for(lambda: thumbs.capturing() == set() and desk.closed == 1, timeout=3)
    await thumbs.close()


async def test_the_next_picture_waits_until_the_last_one_was_taken() -> None:
    desk = Desk()
    thumbs, watcher = await watching(desk, interval=0.01, linger=0, consume_wait=0.5)
    versions = [thumbs.version("1")]
    for i in range(20):  # nobody fetches: at most one new picture per consume_wait
        desk.paint((i * 10, 0, 0), (0, 0, 10, 10))
        await asyncio.sleep(0.03)
        versions.append(thumbs.version("1"))
    assert len(set(versions)) <= 3
    thumb = await thumbs.get("1", SCREEN, "medium")  # taken: the next one comes at once
    desk.paint((0, 0, 250), (0, 0, 10, 10))
    await await_for(lambda: thumbs.version("1") > thumb.version, timeout=0.3)
    watcher.close()
    await thumbs.close()


async def test_a_screen_without_change_signal_is_polled() -> None:
    desk = Desk(signal=False)
    thumbs, watcher = await watching(desk, interval=0.05, linger=5)
    await thumbs.get("1", SCREEN, "medium")  # taken: the next look is due
    await await_for(lambda: desk.reads >= 4, timeout=3)
    desk.paint((0, 0, 0))
    assert list(await asyncio.wait_for(watcher.changed(), 3)) == ["1"]
    watcher.close()
    await thumbs.close()


async def test_no_screen_or_a_failed_capture_gives_the_placeholder() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.05, linger=0.2)
    for size in SIZES:
        assert await thumbs.get("1", None, size) == placeholder(size)
    assert desk.opened == 0
    desk.broken = True
    assert await thumbs.get("2", SCREEN, "large") == placeholder("large")
    await await_for(lambda: thumbs.capturing() == set(), timeout=3)
    desk.broken = False
    assert (await thumbs.get("2", SCREEN, "large")).version > 0  # a later request starts afresh
    with pytest.raises(ValueError):
        await thumbs.get("2", SCREEN, "huge")
    await thumbs.close()


async def test_a_server_that_stops_answering_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thumbnails_module, "X_TIMEOUT_S", 0.2)
    desk = Desk()
    thumbs, watcher = await watching(desk, interval=0.01, linger=0.5)
    await thumbs.get("1", SCREEN, "medium")
    desk.stuck = True
    desk.paint((1, 2, 3))
    await await_for(lambda: desk.broken and not desk.stuck, timeout=2)  # abort() was called
    assert (await thumbs.get("1", SCREEN, "medium")).version > 0  # the last picture stays
    watcher.close()
    await thumbs.close()


def test_placeholder_says_so() -> None:
    image = picture(placeholder("medium").jpeg)
    assert image.size == (320, 200)
    low, high = image.convert("L").getextrema()
    assert high - low > 60  # some text on the grey


def test_thumbnail_sizes_keep_the_aspect_and_never_enlarge() -> None:
    assert thumb_size((1280, 800), 480) == (480, 300)
    assert thumb_size((1920, 1080), 480) == (480, 270)
    assert thumb_size((400, 300), 480) == (400, 300)


@pytest.mark.parametrize("screen", [(1280, 800), (1366, 768), (1920, 1080), (1024, 768), (400, 300)])
def test_scaling_a_part_matches_scaling_the_whole(screen: tuple[int, int]) -> None:
    rng = random.Random(screen[0])
    noise = Image.effect_noise(screen, 60)
    image = Image.merge("RGB", [noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                noise.transpose(Image.Transpose.FLIP_TOP_BOTTOM)])
    for width in SIZES.values():
        scale = Scale(screen, thumb_size(screen, width))
        whole = scale.whole(image)
        assert whole.size == scale.out
        for _ in range(40):
            left, top = rng.randrange(screen[0]), rng.randrange(screen[1])
            box = (left, top, rng.randint(left + 1, screen[0]), rng.randint(top + 1, screen[1]))
            dest, source = scale.regions(box)
            changed = image.copy()
            changed.paste((255, 0, 255), box)
            tile = scale.tile(changed.crop(source), source[:2], dest)
            expected = scale.whole(changed)
            assert same(tile, expected.crop(dest))
            # and outside dest, nothing the box changed shows
            outside = ImageChops.difference(expected, whole)
            outside.paste((0, 0, 0), dest)
            assert max(high for _, high in outside.getextrema()) <= 2


def test_boxes_are_merged_when_that_wastes_little() -> None:
    assert merge_boxes([]) == []
    assert merge_boxes([(0, 0, 10, 10), (10, 0, 20, 10)]) == [(0, 0, 20, 10)]
    far = [(0, 0, 10, 10), (1000, 700, 1010, 710)]
    assert sorted(merge_boxes(far)) == far
    many = [(x, 0, x + 5, 5) for x in range(0, 1000, 10)]
    assert merge_boxes(many) == [(0, 0, 995, 5)]
    scattered = [(x * 100, y * 100, x * 100 + 5, y * 100 + 5) for x in range(4) for y in range(4)]
    assert len(merge_boxes(scattered)) <= 6


async def test_a_watcher_gets_the_whole_picture_then_only_the_part_that_changed() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.02, linger=5)
    whole = await thumbs.patch("1", SCREEN, "medium", None)
    assert whole is not None and whole.whole and whole.box == (0, 0, 320, 200)
    assert await thumbs.patch("1", SCREEN, "medium", whole.version) is None  # up to date: nothing
    drawn = picture(whole.jpeg)

    desk.paint((250, 250, 0), (800, 400, 840, 440))  # 10x10 thumbnail pixels at (200, 100)
    await await_for(lambda: thumbs.version("1") > whole.version, timeout=3)
    part = await thumbs.patch("1", SCREEN, "medium", whole.version)
    assert part is not None and not part.whole
    x0, y0, x1, y1 = part.box
    assert (x0, y0) == (192, 96) and x1 - x0 <= 32 and y1 - y0 <= 32  # on the 16-px grid, around it
    assert picture(part.jpeg).size == (x1 - x0, y1 - y0)
    assert await thumbs.patch("1", SCREEN, "medium", whole.version) is part  # encoded once, shared
    drawn.paste(picture(part.jpeg), (x0, y0))
    current = picture((await thumbs.get("1", SCREEN, "medium")).jpeg)
    assert max(ImageChops.difference(drawn, current).getextrema()[i][1] for i in range(3)) < 40

    assert (await thumbs.patch("1", SCREEN, "medium", 10**9)).whole  # type: ignore[union-attr]
    large = await thumbs.patch("1", SCREEN, "large", None)  # another size: another picture, whole
    assert large is not None and large.whole and large.size == (480, 300) and large.version == part.version
    await thumbs.close()


async def test_a_watcher_too_far_behind_gets_the_whole_picture() -> None:
    desk = Desk()
    thumbs = Thumbnailer(desk.open, interval=0.01, consume_wait=0.01, linger=5)
    first = await thumbs.patch("1", SCREEN, "small", None)
    assert first is not None
    for step in range(History.LIMIT + 2):
        before = thumbs.version("1")
        desk.paint((step * 10, 0, 0), (0, 0, 16, 16))
        await await_for(lambda before=before: thumbs.version("1") > before, timeout=3)
        await thumbs.get("1", SCREEN, "small")  # taken: the next one may be made
    late = await thumbs.patch("1", SCREEN, "small", first.version)
    assert late is not None and late.whole
    await thumbs.close()


async def test_a_session_without_a_screen_gets_the_placeholder_once() -> None:
    thumbs = Thumbnailer(Desk().open)
    empty = await thumbs.patch("1", None, "small", None, "a Wayland session")
    assert empty is not None and empty.version == 0 and empty.whole and empty.size == (160, 100)
    assert await thumbs.patch("1", None, "small", 0) is None
    await thumbs.close()


def test_history_says_what_changed_since_a_version_it_knows() -> None:
    history = History(since=5)
    history.add(7, (0, 0, 16, 16))
    history.add(9, None)  # a version that left this size as it was
    history.add(12, (32, 32, 48, 64))
    assert history.changed_since(5) == (True, (0, 0, 48, 64))
    assert history.changed_since(7) == (True, (32, 32, 48, 64))
    assert history.changed_since(12) == (True, None)
    assert history.changed_since(6) == (False, None)  # never heard of: the whole picture


def test_importing_the_thumbnails_leaves_python_xlib_alone() -> None:
    """The thumbnailer talks X through xwire: importing it loads (let alone patches) no
    python-xlib in the process."""
    code = ("import sys, polydesk.thumbnails.feed, polydesk.thumbnails.bases; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'Xlib'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2])
    assert done.stdout.strip() == "[]"
