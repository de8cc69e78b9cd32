"""GET /api/v1/events: a WebSocket of session changes, filtered to what the caller may see.

Messages are JSON objects ``{"kind", "session_id", "session", "detail"}``:

- ``snapshot`` first, with ``sessions``: every session the caller sees now;
- ``session-started`` / ``session-changed`` (with the session) and ``session-ended``;
- ``thumbnail-changed`` (``detail.version``), only with ``?thumbnails=true``: the caller
  then counts as a watcher of every session whose screen it may see, so those are
  followed while the socket is open (captured when they change, at most once a second),
  and it is told only about thumbnails that changed; several changes of one session
  while the socket is busy come as one.

``?view=dashboard`` leaves out what the Dashboard does not show (administrator and
Dashboard-user sessions unless ``show_privileged_sessions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from polydesk import policy
from polydesk.events import Event, public_session
from polydesk.manager import Manager
from polydesk.model import Caller, Session
from polydesk.thumbnails import Thumbnailer, Watcher
from polydesk.web.auth import Authenticator
from polydesk.web.race import first_done
from polydesk.web.thumbs import may_watch, on_dashboard, screen_for

log = logging.getLogger(__name__)

RECHECK_S = 30.0  # how often an open socket checks its caller is still signed in with the same role


def session_json(session: Session, caller: Caller) -> dict[str, Any]:
    return {**public_session(session), "own": session.uid == caller.uid}


class _Stream:
    """What one socket has been told, and which thumbnails it watches."""

    def __init__(self, manager: Manager, caller: Caller, view: str, watcher: Watcher | None) -> None:
        self.manager = manager
        self.caller = caller
        self.view = view
        self.watcher = watcher
        self.known: set[str] = set()

    def shows(self, session: Session) -> bool:
        if self.view == "dashboard":
            return on_dashboard(self.caller, session, self.manager.settings)
        return policy.may_see(self.caller, session)

    def learn(self, session: Session) -> None:
        self.known.add(session.id)
        if self.watcher is not None and may_watch(self.caller, session, self.manager.settings):
            self.watcher.add(session.id, screen_for(self.manager, session))

    def forget(self, session_id: str) -> None:
        self.known.discard(session_id)
        if self.watcher is not None:
            self.watcher.remove(session_id)

    def translate(self, event: Event) -> dict[str, Any] | None:
        """The message for this caller, or None when the event is about a session it does not see."""
        if event.kind == "session-ended" or event.session is None:
            if event.session_id not in self.known:
                return None
            if event.kind == "session-ended":
                self.forget(event.session_id)
            return event.to_json()
        session = self.manager.store.session(event.session_id)
        if session is None or not self.shows(session):
            return None
        if event.session_id not in self.known:
            self.learn(session)
        return {**event.to_json(), "session": {**event.session, "own": session.uid == self.caller.uid}}


def _same_origin(ws: WebSocket) -> bool:
    """Cookies ride along on cross-site WebSocket handshakes: refuse other origins' pages."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


def events_router(manager: Manager, thumbnails: Thumbnailer, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.websocket("/events")
    async def events(ws: WebSocket, view: Literal["all", "dashboard"] = "all") -> None:
        caller = auth.identify(ws)
        if caller is None or (caller.via == "web" and not _same_origin(ws)):
            await ws.close(code=1008, reason="not signed in")
            return
        await ws.accept()
        watch = ws.query_params.get("thumbnails", "false") not in ("0", "false", "")
        watcher = thumbnails.watcher() if watch else None
        stream = _Stream(manager, caller, view, watcher)
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(1000)
        try:
            async with manager.bus.subscribe() as queue:
                visible = [s for s in await manager.list_sessions(caller) if stream.shows(s)]
                for session in visible:
                    stream.learn(session)
                await ws.send_json({"kind": "snapshot", "session_id": None, "detail": {},
                                    "sessions": [session_json(s, caller) for s in visible]})
                await _pump(ws, auth, caller, stream, queue, outbox)
        except WebSocketDisconnect:
            pass
        finally:
            if watcher is not None:
                watcher.close()

    return router


async def _pump(ws: WebSocket, auth: Authenticator, caller: Caller, stream: _Stream,
                queue: asyncio.Queue[Event], outbox: asyncio.Queue[dict[str, Any]]) -> None:
    async def bus() -> None:
        while True:
            message = stream.translate(await queue.get())
            if message is not None:
                await outbox.put(message)

    async def pictures() -> None:
        assert stream.watcher is not None
        while True:
            for session_id, version in (await stream.watcher.changed()).items():
                await outbox.put({"kind": "thumbnail-changed", "session_id": session_id,
                                  "session": None, "detail": {"version": version}})
            # Pacing: the next batch only once this one is written; meanwhile the watcher
            # folds further changes of a session into one (a slow socket gets fewer, newer).
            await outbox.join()

    async def sender() -> None:
        while True:
            await ws.send_json(await outbox.get())  # one sender: ASGI sends must not interleave
            outbox.task_done()

    async def reader() -> None:
        while True:
            await ws.receive_text()  # clients have nothing to say; this notices them leaving

    async def recheck() -> None:
        while True:
            await asyncio.sleep(RECHECK_S)
            if auth.identify(ws) != caller:
                await ws.close(code=1008, reason="signed out or role changed")
                return

    jobs = [bus(), sender(), reader(), recheck()]
    if stream.watcher is not None:
        jobs.append(pictures())
    done = await first_done(jobs)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, WebSocketDisconnect):
            with contextlib.suppress(Exception):
                await ws.close(code=1011)
            log.warning("events socket of %s ended: %s", caller.user, exc)
