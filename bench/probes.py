"""What the bench itself does with the screens: the naive baseline, and latency probes.

Both hold one python-xlib connection per session, opened as root with the session's
cookie (as the daemon does).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from bench.dashboard import Dashboard, Fetched
from polydesk.core.screen import Screen
from polydesk.system.x11.client import open_display
from polydesk.thumbnails.picture import SIZES, thumb_size

PROBE_COLORS = [(230, 20, 20), (20, 220, 40), (30, 60, 240), (240, 220, 20), (220, 30, 220), (20, 220, 220)]
PROBE_PIXEL = (310, 190)  # in the medium thumbnail: the root window, right of and below the xterm
PROBE_TIMEOUT_S = 15.0


@contextlib.contextmanager
def screens(displays: dict[str, tuple[str, Path]]) -> Iterator[dict[str, Any]]:
    """{session id: python-xlib connection} for {session id: (display, Xauthority)}."""
    conns: dict[str, Any] = {}
    try:
        for session_id, (display, xauthority) in displays.items():
            conns[session_id] = open_display(Screen(display, str(xauthority)), budget=False)
        yield conns
    finally:
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()


def naive_ms_per_frame(conns: list[Any], rounds: int = 2) -> float:
    """CPU per thumbnail the plain way, as a poller makes one of every session every time:
    GetImage of the whole screen through python-xlib, Pillow's resize to the medium size
    (its default filter), JPEG (Pillow's default quality). Nothing for serving it counted."""
    started = time.thread_time()
    frames = 0
    for _ in range(rounds):
        for conn in conns:
            root = conn.screen().root
            geometry = root.get_geometry()
            size = (geometry.width, geometry.height)
            reply = root.get_image(0, 0, *size, 2, 0xFFFFFFFF)
            image = Image.frombuffer("RGB", size, reply.data, "raw", "BGRX", 0, 1)
            small = image.resize(thumb_size(size, SIZES["medium"]))
            small.save(io.BytesIO(), "JPEG")
            frames += 1
    return (time.thread_time() - started) / frames * 1000


def paint_root(conn: Any, color: tuple[int, int, int]) -> None:
    root = conn.screen().root
    red, green, blue = color
    root.change_attributes(background_pixel=(red << 16) | (green << 8) | blue)
    root.clear_area(0, 0, 0, 0)
    conn.sync()


def _shows(image: Image.Image, color: tuple[int, int, int]) -> bool:
    pixel = image.convert("RGB").getpixel(PROBE_PIXEL)
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 70 for a, b in zip(pixel, color, strict=True))


async def probe(dashboard: Dashboard, conn: Any, session_id: str, color: tuple[int, int, int]) -> float:
    """Paint ``session_id``'s root window; seconds until the WebSocket announced the first
    version whose picture shows it (PROBE_TIMEOUT_S if none did)."""
    arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    painted = 0.0

    def seen(picture: Fetched) -> None:
        if picture.session_id == session_id and not arrived.done() and _shows(picture.image, color):
            arrived.set_result(picture.announced_at)

    stop = dashboard.listen(seen)
    try:
        await asyncio.to_thread(paint_root, conn, color)
        painted = time.monotonic()
        return max(0.0, await asyncio.wait_for(arrived, PROBE_TIMEOUT_S) - painted)
    except TimeoutError:
        return PROBE_TIMEOUT_S
    finally:
        stop()


async def latencies(dashboard: Dashboard, conns: dict[str, Any], samples: int,
                    spacing: float = 0.25) -> list[float]:
    """``samples`` probes, one started every ``spacing`` seconds on a session no other
    probe is using, with a colour that session's root does not have yet."""
    rng = random.Random(5)
    busy: set[str] = set()
    colors: dict[str, int] = {}
    tasks: list[asyncio.Task[float]] = []

    async def one(session_id: str) -> float:
        try:
            colors[session_id] = (colors.get(session_id, -1) + 1) % len(PROBE_COLORS)
            return await probe(dashboard, conns[session_id], session_id, PROBE_COLORS[colors[session_id]])
        finally:
            busy.discard(session_id)

    for _ in range(samples):
        free = [sid for sid in conns if sid not in busy]
        if free:
            session_id = rng.choice(free)
            busy.add(session_id)
            tasks.append(asyncio.create_task(one(session_id)))
        await asyncio.sleep(spacing)
    return list(await asyncio.gather(*tasks))
