"""Thumbnail route and the rules for who may watch which session's screen."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from polydesk import policy
from polydesk.config import Settings
from polydesk.hosts.base import Screen
from polydesk.manager import Manager
from polydesk.model import Action, Caller, NotPermitted, Role, Session, UnknownSession
from polydesk.thumbnails import PLACEHOLDER_TEXT, Thumbnailer, placeholder
from polydesk.web.api import Who

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
    host = manager.hosts.get(session.host)
    return host.screen(session) if host is not None else None


def no_screen_text(manager: Manager, session: Session) -> str:
    """What the placeholder says: the host's reason when it has one (logind: a Wayland session)."""
    reason = getattr(manager.hosts.get(session.host), "screen_unavailable_reason", None)
    said = reason(session) if callable(reason) else None
    return str(said) if said else PLACEHOLDER_TEXT


def watchable(manager: Manager, caller: Caller, session_id: str) -> Session:
    """The session if the caller may watch it; else UnknownSession / NotPermitted.

    Reads the store directly (not ``get_session``) so a thumbnail does not cost an idle-time query.
    """
    session = manager.store.session(session_id)
    if session is None:
        raise UnknownSession(session_id)
    if not policy.may_see(caller, session):
        raise NotPermitted(f"session {session_id} belongs to another user")
    decision = may_watch(caller, session, manager.settings)
    if not decision:
        raise NotPermitted(decision.reason)
    return session


def thumbnails_router(manager: Manager, thumbnails: Thumbnailer) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

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
        screen = screen_for(manager, session)
        thumb = (await thumbnails.get(session.id, screen, size) if screen is not None
                 else placeholder(size, no_screen_text(manager, session)))
        headers = {"ETag": thumb.etag, "Cache-Control": "private, no-cache",
                   "X-Thumbnail-Version": str(thumb.version)}
        if thumb.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(thumb.jpeg, media_type="image/jpeg", headers=headers)

    return router


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
