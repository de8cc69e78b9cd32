"""A Dashboard as the bench sees it: what the page's script does, over loopback TCP.

It opens the events WebSocket with ``?thumbnails=true&view=dashboard`` and, for each
``thumbnail-changed``, fetches that session's medium thumbnail with the ETag it has,
one request per session at a time (a change announced meanwhile is fetched once the
current request is done), as static/dashboard.js does, on six keep-alive connections
as a browser. It authenticates with an API token, counts every byte the daemon sends
it (WebSocket messages, HTTP heads and bodies), and remembers when each announced
version arrived so latency probes can find the picture that first shows their change.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from bench.httpload import Client, split_url

SIZE = "medium"
CONNECTIONS = 6  # thumbnail requests at a time, as a browser has per site


@dataclass
class Fetched:
    session_id: str
    version: int
    announced_at: float  # when the WebSocket said this version exists
    image: Image.Image


@dataclass
class Dashboard:
    base_url: str  # http://127.0.0.1:PORT
    token: str
    bytes_in: int = 0
    announced: int = 0  # thumbnail-changed messages
    fetched: int = 0  # 200 answers: new pictures
    not_modified: int = 0  # 304 answers
    sessions: set[str] = field(default_factory=set)
    _etags: dict[str, str] = field(default_factory=dict)
    _wanted: dict[str, tuple[int, float]] = field(default_factory=dict)  # newest announced, when
    _busy: set[str] = field(default_factory=set)
    _listeners: list[Callable[[Fetched], None]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _clients: list[Client] = field(default_factory=list)

    def listen(self, callback: Callable[[Fetched], None]) -> Callable[[], None]:
        """Call ``callback`` with every picture fetched; returns the way to stop."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def run(self, ready: asyncio.Event) -> None:
        """Watch until cancelled; ``ready`` is set once the snapshot arrived."""
        headers = {"Authorization": f"Bearer {self.token}"}
        url = self.base_url.replace("http://", "ws://") + "/api/v1/events?thumbnails=true&view=dashboard"
        host, port = split_url(self.base_url)
        http: asyncio.Queue[Client] = asyncio.Queue()
        clients = self._clients = [Client(host, port, self.token) for _ in range(CONNECTIONS)]
        for client in clients:
            http.put_nowait(client)
        try:
            async with connect(url, additional_headers=headers, max_size=2**24, open_timeout=30) as ws:
                await self._read(ws, http, ready)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for client in clients:
                await client.close()

    def counters(self) -> tuple[int, int, int]:
        """(bytes received so far, thumbnail-changed messages, new pictures)."""
        return self.bytes_in + sum(c.bytes_in for c in self._clients), self.announced, self.fetched

    async def _read(self, ws: ClientConnection, http: asyncio.Queue[Client], ready: asyncio.Event) -> None:
        async for raw in ws:
            now = time.monotonic()
            self.bytes_in += len(raw)
            message = json.loads(raw)
            kind, session_id = message["kind"], message["session_id"]
            if kind == "snapshot":
                self.sessions = {s["id"] for s in message["sessions"]}
                for sid in self.sessions:
                    self._want(http, sid, 0, now)  # the page loads every card's picture
                ready.set()
            elif kind == "session-started":
                self.sessions.add(session_id)
            elif kind == "session-ended":
                self.sessions.discard(session_id)
            elif kind == "thumbnail-changed":
                self.announced += 1
                self._want(http, session_id, int(message["detail"]["version"]), now)

    def _want(self, http: asyncio.Queue[Client], session_id: str, version: int, when: float) -> None:
        self._wanted[session_id] = (version, when)
        if session_id not in self._busy:
            self._busy.add(session_id)
            task = asyncio.create_task(self._fetch(http, session_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, http: asyncio.Queue[Client], session_id: str) -> None:
        client = await http.get()  # at most CONNECTIONS requests at a time, as a browser
        try:
            done = -1
            while self._wanted[session_id][0] != done:
                version, announced_at = self._wanted[session_id]
                headers = {}
                if session_id in self._etags:
                    headers["If-None-Match"] = self._etags[session_id]
                status, fields, body = await client.get(
                    f"/api/v1/sessions/{session_id}/thumbnail?size={SIZE}&v={version}", headers)
                done = version
                if status == 304:
                    self.not_modified += 1
                    continue
                if status != 200:
                    return  # the session ended meanwhile
                self.fetched += 1
                self._etags[session_id] = fields["etag"]
                if self._listeners:
                    image = Image.open(io.BytesIO(body))
                    image.load()
                    picture = Fetched(session_id, int(fields["x-thumbnail-version"]), announced_at, image)
                    for listener in list(self._listeners):
                        listener(picture)
        finally:
            http.put_nowait(client)
            self._busy.discard(session_id)


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
