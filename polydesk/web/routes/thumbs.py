"""Thumbnail route and the rules for who may watch which session's screen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.model import Action, Caller, NotPermitted, PolydeskError, Role, Session, UnknownSession
from polydesk.core.screen import Screen
from polydesk.manager.manager import Manager
from polydesk.thumbnails.feed import PLACEHOLDER_TEXT, SIZES, Thumbnailer, placeholder
from polydesk.web.auth import Authenticator
from polydesk.web.routes.api import ERRORS, Who

Size = Literal["small", "medium", "large"]


def may_watch(caller: Caller, session: Session, settings: Settings) -> policy.Decision:
    """Viewing is policy's VIEW, narrowed by the monitoring settings for other people's sessions."""
    decision = policy.may(caller, Action.VIEW, session)
    if not decision or policy.owns(caller, session):
        return decision
    if not settings.monitoring:
        return policy.Decision(False, "monitoring is switched off (setting monitoring)")
    if session.role != Role.STANDARD and not settings.show_privileged_sessions:
        return policy.Decision(
            False, "administrator and Dashboard-user sessions are not shown "
                   "(setting show_privileged_sessions)")
    return policy.ALLOW


def on_dashboard(caller: Caller, session: Session, settings: Settings) -> bool:
    """Whether the Dashboard grid shows this session (MultiPoint hides privileged ones by default)."""
    if not policy.may_see(caller, session):
        return False
    return session.role == Role.STANDARD or settings.show_privileged_sessions


def screen_for(manager: Manager, session: Session) -> Screen | None:
    backend = manager.backends.get(session.backend)
    return backend.screen(session) if backend is not None else None


def no_screen_text(manager: Manager, session: Session) -> str:
    """What the placeholder says: the backend's reason when it has one (logind: a Wayland session)."""
    reason = getattr(manager.backends.get(session.backend), "screen_unavailable_reason", None)
    said = reason(session) if callable(reason) else None
    return str(said) if said else PLACEHOLDER_TEXT


def watchable(manager: Manager, caller: Caller, session_id: str) -> Session:
    """The session if the caller may watch it; else UnknownSession / NotPermitted.

    Reads the store directly (not ``get_session``) so a thumbnail does not cost an idle-time query.
    """
    session = manager.session_now(session_id)
    if session is None:
        raise UnknownSession(session_id)
    if not policy.may_see(caller, session):
        raise NotPermitted(f"session {session_id} belongs to another user")
    decision = may_watch(caller, session, manager.settings)
    if not decision:
        raise NotPermitted(decision.reason)
    return session


def thumbnails_router(manager: Manager, thumbnails: Thumbnailer) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get(
        "/sessions/{session_id}/thumbnail",
        summary="A JPEG of the session's screen",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "not changed (ETag)"}},
    )
    async def thumbnail(
        session_id: str,
        request: Request,
        caller: Who,
        size: Annotated[Size, Query(description="small (160 px), medium (320 px) or large (480 px)")]
        = "medium",
    ) -> Response:
        session = watchable(manager, caller, session_id)
        return await _answer(manager, thumbnails, session, size, request.headers.get("if-none-match", ""))

    return router


async def _answer(manager: Manager, thumbnails: Thumbnailer, session: Session, size: str,
                  if_none_match: str) -> Response:
    screen = screen_for(manager, session)
    thumb = (await thumbnails.get(session.id, screen, size) if screen is not None
             else placeholder(size, no_screen_text(manager, session)))
    headers = {"ETag": thumb.etag, "Cache-Control": "private, no-cache",
               "X-Thumbnail-Version": str(thumb.version)}
    if thumb.etag in _etags(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(thumb.jpeg, media_type="image/jpeg", headers=headers)


class ThumbnailFastPath:
    """GET /api/v1/sessions/{id}/thumbnail without FastAPI's per-request machinery.

    A Dashboard fetches one thumbnail per changed screen per second, and routing through
    every API route, solving dependencies and validating parameters cost as much as the
    capture itself. This answers only the plain success, with the same checks and the same
    answer as the route above; anything else (not signed in, refused, unknown session, a
    bad size) goes on to that route, which answers it as documented. It sits inside the
    cookie, security-header and metrics middlewares, so those apply as to any request.
    """

    def __init__(self, app: ASGIApp, manager: Manager, thumbnails: Thumbnailer, auth: Authenticator) -> None:
        self.app = app
        self.manager = manager
        self.thumbnails = thumbnails
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = scope["type"] == "http" and scope["method"] == "GET"
        match = _PATH.fullmatch(scope["path"]) if wanted else None
        response = await self._answer(scope, match.group(1)) if match else None
        if response is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE  # what the metrics label requests by
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, session_id: str) -> Response | None:
        conn = HTTPConnection(scope)
        sizes = conn.query_params.getlist("size") or ["medium"]
        if len(sizes) != 1 or sizes[0] not in SIZES:
            return None
        caller = self.auth.identify(conn)
        if caller is None:
            return None
        try:
            session = watchable(self.manager, caller, session_id)
        except PolydeskError:
            return None
        return await _answer(self.manager, self.thumbnails, session, sizes[0],
                             conn.headers.get("if-none-match", ""))


@dataclass(frozen=True)
class _Route:
    path: str


_PATH = re.compile(r"/api/v1/sessions/([^/]+)/thumbnail")
_ROUTE = _Route("/api/v1/sessions/{session_id}/thumbnail")


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
