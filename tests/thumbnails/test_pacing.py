"""When a screen is looked at again (issue 19): a change after a quiet spell at once, a small
change cheap, a screen that changes whole all the time paced, bursts bounded.

The rule on a clock the test drives (``pacing.Budget``), then the thumbnailer on the stand-in
screen of test_thumbnails.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from polydesk.thumbnails.feed import Thumbnailer
from polydesk.thumbnails.pacing import BURST, LOOK_COST, Budget
from tests.harness import await_for
from tests.thumbnails.test_thumbnails import SCREEN, Desk, watching


def looks(budget: Budget, changed: float, every: float, seconds: float, start: float = 100.0) -> list[float]:
    """When a feed on ``budget`` looks, for a screen that changes ``changed`` of itself
    every ``every`` seconds (each look as soon as the budget allows it after a change, and
    reads what changed)."""
    times, now, end = [], start, start + seconds
    while True:
        now += budget.wait(now)
        if now >= end:
            return times
        times.append(now)
        budget.spend(changed, now)
        now += every


def test_a_change_after_a_quiet_spell_is_looked_at_at_once() -> None:
    budget = Budget.every(1.0)
    assert budget.wait(0.0) == 0.0
    budget.spend(1.0, 0.0)  # a whole new picture
    budget.spend(1.0, 0.0)  # and another: the burst spent
    assert budget.wait(0.1) > 0  # in debt just after them
    assert budget.wait(5.0) == 0.0  # quiet for a while: the next change goes at once


def test_a_small_change_every_second_never_waits() -> None:
    budget = Budget.every(1.0)
    times = looks(budget, changed=0.15, every=1.0, seconds=30)  # top's table in an xterm
    assert len(times) == 30
    assert all(later - earlier == 1.0 for earlier, later in itertools.pairwise(times))


def test_a_screen_that_changes_whole_all_the_time_is_paced() -> None:
    times = looks(Budget.every(1.0), changed=1.0, every=0.0, seconds=60)
    steady = (1 + LOOK_COST) / 1.0
    assert 60 / steady <= len(times) <= 60 / steady + 2  # one picture every 1.5 s, and the burst
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[2:])]
    assert min(gaps) >= steady - 1e-9
    slower = looks(Budget.every(2.0), changed=1.0, every=0.0, seconds=60)
    assert len(slower) < len(times) * 0.6  # the interval sets the pace


def test_bursts_are_bounded() -> None:
    budget = Budget.every(1.0)
    quiet = looks(budget, changed=1.0, every=0.0, seconds=1.0, start=1000.0)  # after a long quiet
    assert len(quiet) == 2  # two whole screens from the bucket, then the rate
    tiny = looks(Budget.every(1.0), changed=0.0, every=0.0, seconds=10.0)  # a clock ticking fast
    assert len(tiny) <= (10 + BURST) / LOOK_COST + 1


async def test_a_change_reaches_the_watcher_at_once_not_at_the_next_tick() -> None:
    desk = Desk()
    thumbs, watcher = await watching(desk, interval=1.0, linger=5)  # the default: a tick a second
    await thumbs.get("1", SCREEN, "medium")  # the first picture taken, as a Dashboard does
    await asyncio.sleep(1.6)  # and its cost (a whole screen read) paid back
    for color in ((250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 250)):
        painted = time.monotonic()
        desk.paint(color, (600, 400, 640, 420))
        await asyncio.wait_for(watcher.changed(), 3)
        assert time.monotonic() - painted < 0.25  # a clock's next tick would be 0.4 s away
        await thumbs.get("1", SCREEN, "medium")  # taken
        await asyncio.sleep(0.6 - (time.monotonic() - painted))  # small changes, 0.6 s apart
    watcher.close()
    await thumbs.close()


async def test_a_screen_changing_whole_all_the_time_makes_fewer_pictures_than_a_small_change() -> None:
    async def pictures(box: tuple[int, int, int, int] | None) -> int:
        desk = Desk()
        thumbs = Thumbnailer(desk.open, interval=0.1, linger=5)
        watcher = thumbs.watcher()
        watcher.add("1", SCREEN)
        await asyncio.wait_for(watcher.changed(), 3)
        await asyncio.sleep(0.3)  # quiet: the budget full again
        before, ends = thumbs.frames, time.monotonic() + 1.5
        step = 0
        while time.monotonic() < ends:
            step += 1
            desk.paint((step * 7 % 256, step * 13 % 256, 90), box)
            await asyncio.sleep(0.01)
            await thumbs.get("1", SCREEN, "medium")  # every picture taken at once
        made = thumbs.frames - before
        watcher.close()
        await thumbs.close()
        await await_for(lambda: desk.closed == 1, timeout=3)
        return made

    whole = await pictures(None)
    assert 2 <= whole <= 1.5 * 10 / (1 + LOOK_COST) + 2  # one every 0.15 s, and the burst
    small = await pictures((0, 0, 40, 40))
    assert small >= 1.5 * whole


async def test_a_screen_redrawn_with_the_same_pixels_costs_its_reads() -> None:
    desk = Desk()
    desk.paint((40, 90, 160))  # one colour all over
    thumbs, watcher = await watching(desk, interval=0.1, linger=5)
    await thumbs.get("1", SCREEN, "medium")
    await asyncio.sleep(0.3)
    reads, version, ends = desk.reads, thumbs.version("1"), time.monotonic() + 1.5
    while time.monotonic() < ends:  # damage all over, every 10 ms, and not one pixel changes
        desk.paint((40, 90, 160))
        await asyncio.sleep(0.01)
    assert thumbs.version("1") == version
    assert 2 <= desk.reads - reads <= 1.5 * 10 / (1 + LOOK_COST) + 2  # paced as a changing screen
    watcher.close()
    await thumbs.close()
