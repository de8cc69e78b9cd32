"""GET /api/v1/events: a WebSocket of session changes, filtered to what the caller may see.

Messages are JSON objects ``{"kind", "session_id", "session", "detail"}``:

- ``snapshot`` first, with ``sessions``: every session the caller sees now;
- ``session-started`` / ``session-changed`` (with the session) and ``session-ended``;
- ``projection-started`` (``detail``: ``source``, ``source_user``, ``by``) and
  ``projection-ended`` (``detail``: ``source``, ``why``) for a session whose station is shown
  another session's screen, or its own again;
- ``thumbnail-changed`` (``detail.version``), only with ``?thumbnails=true``: the caller
  then counts as a watcher of every session whose screen it may see, so those are
  followed while the socket is open (captured when they change, at most once a second),
  and it is told only about thumbnails that changed; several changes of one session
  while the socket is busy come as one.

``?pictures=small|medium|large`` (with ``thumbnails=true``) sends the pictures themselves
instead of ``thumbnail-changed``: one binary message per new thumbnail, only the part that
changed since the last one this socket sent (the whole picture first). A binary message is a
2-byte big-endian length, that many bytes of JSON ``{"session_id", "version", "at": [x, y],
"thumbnail": [width, height]}``, then a JPEG to draw at ``at`` on a picture of that size.
The client may send ``{"kind": "pictures", "size": ..., "sessions": [ids] | null}`` to change
the size, or to have only the listed sessions' pictures (the cards it shows) sent. Pictures
to one socket are held to the ``dashboard_picture_kbps`` setting.

- ``chat`` (``detail``: ``seq``, ``time``, ``sender``, ``from`` student|teacher, ``text``): a
  message of a session's conversation, only to its user and to callers who may chat with it
  (docs/chat.md); a raised hand is the session's ``hand_raised_at`` (session-changed).

``?view=dashboard`` leaves out what the Dashboard does not show (administrator and
Dashboard-user sessions unless ``show_privileged_sessions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from polydesk.core import policy
from polydesk.core.events import Event, public_session
from polydesk.core.model import Caller, Session
from polydesk.core.screen import Screen
from polydesk.manager.manager import Manager
from polydesk.thumbnails.feed import SIZES, Patch, Thumbnailer, Watcher
from polydesk.thumbnails.pacing import Budget
from polydesk.web.auth import Authenticator
from polydesk.web.race import first_done

log = logging.getLogger(__name__)

RECHECK_S = 30.0  # how often an open socket checks its caller is still signed in with the same role


def session_json(session: Session, caller: Caller) -> dict[str, Any]:
    return {**public_session(session), "own": session.uid == caller.uid}


Message = dict[str, Any] | bytes  # JSON, or a picture


class BadMessage(ValueError):
    """What a client sent is no message this socket understands."""


class _Stream:
    """What one socket has been told, and which thumbnails it watches."""

    def __init__(self, manager: Manager, caller: Caller, view: str, watcher: Watcher | None,
                 pictures: str | None = None) -> None:
        self.manager = manager
        self.caller = caller
        self.view = view
        self.watcher = watcher
        self.known: set[str] = set()
        self.pictures = pictures  # the size pictures are sent at; None: only thumbnail-changed
        self.sent: dict[str, int] = {}  # session id -> version of the picture sent
        self.shown: set[str] | None = None  # the sessions whose pictures are wanted; None: all
        # session id -> (its screen, what its placeholder says): looked up once, not per picture
        self.screens: dict[str, tuple[Screen | None, str]] = {}

    def shows(self, session: Session) -> bool:
        if self.view == "dashboard":
            return self.manager.on_dashboard(self.caller, session)
        return policy.may_see(self.caller, session)

    def learn(self, session: Session) -> None:
        self.known.add(session.id)
        if self.watcher is not None and self.manager.may_view(self.caller, session):
            screen = self.manager.screen_of(session)
            self.screens[session.id] = (screen, self.manager.no_screen_text(session))
            self.watcher.add(session.id, screen)
            if self.pictures:
                self.watcher.touch(session.id)  # its first picture, even if the screen stays still

    def forget(self, session_id: str) -> None:
        self.known.discard(session_id)
        self.sent.pop(session_id, None)
        self.screens.pop(session_id, None)
        if self.watcher is not None:
            self.watcher.remove(session_id)

    def want(self, message: Any) -> None:
        """A client's ``{"kind": "pictures", "size", "sessions"}``: from now on, pictures at
        that size, of those sessions (null: all); whatever newly needs a picture gets one."""
        if not isinstance(message, dict) or message.get("kind") != "pictures" or self.watcher is None:
            raise BadMessage('the only message a client may send is {"kind": "pictures", ...} '
                             "on a socket opened with ?thumbnails=true")
        size, sessions = message.get("size", self.pictures), message.get("sessions")
        if size not in SIZES:
            raise BadMessage(f"unknown thumbnail size {size!r}: small, medium or large")
        if sessions is not None and not (isinstance(sessions, list)
                                         and all(isinstance(s, str) for s in sessions)):
            raise BadMessage('"sessions" must be a list of session ids, or null for all')
        before = self.shown
        if size != self.pictures:
            self.pictures, self.sent, before = size, {}, set()
        self.shown = None if sessions is None else set(sessions)
        for session_id in self.watcher.sessions:
            if self.wants(session_id) and before is not None and session_id not in before:
                self.watcher.touch(session_id)

    def wants(self, session_id: str) -> bool:
        return self.shown is None or session_id in self.shown

    async def picture(self, thumbnails: Thumbnailer, session_id: str) -> bytes | None:
        """The message bringing the client's picture of this session up to date, if it needs one."""
        watched = self.screens.get(session_id)
        if watched is None or self.pictures is None or not self.wants(session_id):
            return None
        screen, no_picture = watched
        patch = await thumbnails.patch(session_id, screen, self.pictures, self.sent.get(session_id),
                                       no_picture)
        if patch is None:
            return None
        self.sent[session_id] = patch.version
        return picture_message(session_id, patch)

    def translate(self, event: Event) -> dict[str, Any] | None:
        """The message for this caller, or None when the event is about a session it does not see."""
        if event.kind == "chat":  # the words: only to the session's user and who may chat with them
            session = self.manager.session_now(event.session_id)
            if (session is None or event.session_id not in self.known
                    or not self.manager.may_read_chat(self.caller, session)):
                return None
            return event.to_json()
        if event.kind == "session-ended" or event.session is None:
            if event.session_id not in self.known:
                return None
            if event.kind == "session-ended":
                self.forget(event.session_id)
            return event.to_json()
        session = self.manager.session_now(event.session_id)
        if session is None or not self.shows(session):
            return None
        if event.session_id not in self.known:
            self.learn(session)
        return {**event.to_json(), "session": {**event.session, "own": session.uid == self.caller.uid}}


def _json(text: str | None) -> Any:
    """A client's text message; None for bytes or what is not JSON (a BadMessage then)."""
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def picture_message(session_id: str, patch: Patch) -> bytes:
    head = json.dumps({"session_id": session_id, "version": patch.version, "at": patch.box[:2],
                       "thumbnail": patch.size}, separators=(",", ":")).encode()
    return struct.pack(">H", len(head)) + head + patch.jpeg


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
        pictures = ws.query_params.get("pictures") if watch else None
        if pictures is not None and pictures not in SIZES:
            await ws.close(code=1008, reason=f"unknown thumbnail size {pictures!r}: small, medium or large")
            return
        watcher = thumbnails.watcher() if watch else None
        stream = _Stream(manager, caller, view, watcher, pictures)
        outbox: asyncio.Queue[Message] = asyncio.Queue(1000)
        try:
            async with manager.events() as queue:
                visible = [s for s in await manager.list_sessions(caller) if stream.shows(s)]
                for session in visible:
                    stream.learn(session)
                await ws.send_json({"kind": "snapshot", "session_id": None, "detail": {},
                                    "sessions": [session_json(s, caller) for s in visible]})
                await _pump(ws, auth, thumbnails, stream, queue, outbox)
        except WebSocketDisconnect:
            pass
        finally:
            if watcher is not None:
                watcher.close()

    return router


async def _pump(ws: WebSocket, auth: Authenticator, thumbnails: Thumbnailer, stream: _Stream,
                queue: asyncio.Queue[Event], outbox: asyncio.Queue[Message]) -> None:
    caller = stream.caller

    async def bus() -> None:
        while True:
            message = stream.translate(await queue.get())
            if message is not None:
                await outbox.put(message)

    async def pictures() -> None:
        assert stream.watcher is not None
        # The page's share of the network: bytes a second, a second's worth at once.
        kbps = stream.manager.settings.dashboard_picture_kbps
        budget = Budget(kbps * 125, burst=kbps * 125) if kbps > 0 else None
        while True:
            sent = 0
            for session_id, version in (await stream.watcher.changed()).items():
                if stream.pictures is None:
                    await outbox.put({"kind": "thumbnail-changed", "session_id": session_id,
                                      "session": None, "detail": {"version": version}})
                elif (picture := await stream.picture(thumbnails, session_id)) is not None:
                    await outbox.put(picture)
                    sent += len(picture)
            # Pacing: the next batch only once this one is written, and the page's bytes paid
            # back; meanwhile the watcher folds further changes of a session into one (a slow
            # socket gets fewer, newer), and feeds whose picture is not taken wait (Epoptes).
            await outbox.join()
            if budget is not None and sent:
                budget.take(sent, time.monotonic())
                await asyncio.sleep(budget.wait(time.monotonic()))

    async def sender() -> None:
        while True:
            message = await outbox.get()  # one sender: ASGI sends must not interleave
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_json(message)
            outbox.task_done()

    async def reader() -> None:
        while True:
            message = await ws.receive()  # also how a client leaving is noticed
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            try:
                stream.want(_json(message.get("text")))
            except BadMessage as exc:
                await ws.close(code=1007, reason=str(exc).encode()[:120].decode(errors="ignore"))
                return

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
