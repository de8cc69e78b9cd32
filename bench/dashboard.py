"""A Dashboard as the bench sees it: what the page's script does, over loopback TCP.

It opens the events WebSocket with ``?thumbnails=true&view=dashboard&pictures=medium``,
as static/dashboard.js does, and gets every new thumbnail pushed as a binary message:
the part of the picture that changed since the last one (the whole picture first), which
it draws onto its copy of that session's picture. It authenticates with an API token,
counts every byte the daemon sends it, and remembers when each version arrived so latency
probes can find the picture that first shows their change.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from PIL import Image
from websockets.asyncio.client import connect

SIZE = "medium"


@dataclass
class Fetched:
    session_id: str
    version: int
    announced_at: float  # when the picture arrived
    image: Image.Image  # the whole thumbnail, as the page shows it now


@dataclass
class Dashboard:
    base_url: str  # http://127.0.0.1:PORT
    token: str
    bytes_in: int = 0
    fetched: int = 0  # pictures (whole or parts) received
    whole: int = 0  # of which whole pictures
    sessions: set[str] = field(default_factory=set)
    pictures: dict[str, Image.Image] = field(default_factory=dict)
    _listeners: list[Callable[[Fetched], None]] = field(default_factory=list)

    def listen(self, callback: Callable[[Fetched], None]) -> Callable[[], None]:
        """Call ``callback`` with every picture received; returns the way to stop."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def run(self, ready: asyncio.Event) -> None:
        """Watch until cancelled; ``ready`` is set once the snapshot arrived."""
        headers = {"Authorization": f"Bearer {self.token}"}
        url = (self.base_url.replace("http://", "ws://")
               + f"/api/v1/events?thumbnails=true&view=dashboard&pictures={SIZE}")
        async with connect(url, additional_headers=headers, max_size=2**24, open_timeout=30) as ws:
            async for raw in ws:
                self.bytes_in += len(raw)
                if isinstance(raw, bytes):
                    self._draw(raw, time.monotonic())
                    continue
                message = json.loads(raw)
                kind, session_id = message["kind"], message["session_id"]
                if kind == "snapshot":
                    self.sessions = {s["id"] for s in message["sessions"]}
                    ready.set()
                elif kind == "session-started":
                    self.sessions.add(session_id)
                elif kind == "session-ended":
                    self.sessions.discard(session_id)
                    self.pictures.pop(session_id, None)

    def counters(self) -> tuple[int, int, int]:
        """(bytes received so far, pictures received, of which whole)."""
        return self.bytes_in, self.fetched, self.whole

    def _draw(self, raw: bytes, now: float) -> None:
        (length,) = struct.unpack_from(">H", raw)
        head = json.loads(raw[2:2 + length])
        part = Image.open(io.BytesIO(raw[2 + length:]))
        part.load()
        session_id, size = head["session_id"], tuple(head["thumbnail"])
        picture = self.pictures.get(session_id)
        self.fetched += 1
        if picture is None or picture.size != size or part.size == size:
            self.whole += 1
            picture = self.pictures[session_id] = Image.new("RGB", size)
        picture.paste(part.convert("RGB"), tuple(head["at"]))
        for listener in list(self._listeners):
            listener(Fetched(session_id, int(head["version"]), now, picture))


@contextlib.asynccontextmanager
async def watching(base_url: str, token: str, timeout: float = 60) -> AsyncIterator[Dashboard]:
    """A Dashboard watching every session, until the block ends."""
    dashboard = Dashboard(base_url, token)
    ready = asyncio.Event()
    task = asyncio.create_task(dashboard.run(ready))
    waiting = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it failed: say why
        if not ready.is_set():
            raise RuntimeError("the dashboard got no snapshot")
        yield dashboard
    finally:
        for job in (waiting, task):
            job.cancel()
        await asyncio.gather(waiting, task, return_exceptions=True)
