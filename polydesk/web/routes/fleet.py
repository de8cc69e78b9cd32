"""/api/v1/fleet: the hosts of the fleet and all their sessions, seen from this host.

Session ids here are ``host/id``. Actions on them go through the usual
``POST /api/v1/sessions/<action>`` routes, which in fleet mode are wired to
``FleetDesk``: ``{"ids": ["lab2/7"]}``, ``{"all": true, "fleet": true}`` or
``{"all": true, "host": "lab2"}``. Without fleet mode every route here answers
404 (unknown-host), saying that fleet mode is off.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from polydesk.config.fleet import HOST_NAME
from polydesk.config.settings import Settings
from polydesk.core import i18n
from polydesk.core.model import Caller, Role, UnknownHost
from polydesk.fleet.desk import FleetDesk, FleetSession, HostUnreachable
from polydesk.manager.viewing import ScreenThumbnails
from polydesk.thumbnails.feed import placeholder
from polydesk.web.auth import Authenticator, csrf_token
from polydesk.web.routes.api import ERRORS, SessionOut, Who
from polydesk.web.routes.pages import STATIC, make_templates
from polydesk.web.routes.thumbs import Size

if TYPE_CHECKING:
    from polydesk.fleet.node import FleetNode  # imports nats: only in fleet mode

FLEET_OFF = "fleet mode is off on this host (no [fleet] in its configuration)"


class HostOut(BaseModel):
    name: str
    online: bool
    local: bool
    sessions: int
    last_seen_s: float | None
    listen: str | None
    public_key: str | None
    state: str


class FleetSessionOut(SessionOut):
    fleet_host: str
    host_online: bool


HostName = Annotated[str, Path(pattern=HOST_NAME.pattern, description="A host of the fleet")]
SessionId = Annotated[str, Path(min_length=1, max_length=64, description="The session's id on its host")]


def fleet_session_json(found: FleetSession, caller: Caller, local: str) -> dict[str, Any]:
    session = found.session
    own = session.get("uid") == caller.uid if found.host == local else session.get("user") == caller.user
    return {**session, "id": found.id, "own": own, "fleet_host": found.host, "host_online": found.online}


def fleet_router(thumbnails: ScreenThumbnails, fleet: FleetNode | None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/fleet", responses=ERRORS, tags=["fleet"])

    def desk() -> FleetDesk:
        if fleet is None:
            raise UnknownHost("", FLEET_OFF)
        return fleet.desk

    @router.get("/hosts", response_model=list[HostOut], summary="The hosts of the fleet")
    async def hosts(caller: Who) -> list[HostOut]:
        return [HostOut(**vars(view)) for view in desk().hosts()]

    @router.get("/sessions", response_model=list[FleetSessionOut],
                summary="Every session of the fleet you may see (ids host/id)")
    async def sessions(
        caller: Who,
        host: Annotated[str | None, Query(pattern=HOST_NAME.pattern, description="Only this host")] = None,
    ) -> Response:
        the_desk = desk()
        found = await the_desk.list_sessions(caller, host)
        # Thousands of sessions: the JSON each host's session was given when it last changed (the
        # shape FleetSessionOut documents), closed with what depends on the caller and the moment.
        # A model per session would cost more than everything else.
        parts = []
        for s in found:
            if s.fragment is None:
                parts.append(json.dumps(fleet_session_json(s, caller, the_desk.name)).encode())
            else:
                own = s.session.get("user") == caller.user
                parts.append(s.fragment + b',"own":%s,"host_online":%s}' % (
                    b"true" if own else b"false", b"true" if s.online else b"false"))
        return Response(b"[" + b",".join(parts) + b"]", media_type="application/json")

    @router.get("/sessions/{host}/{session_id}", response_model=FleetSessionOut,
                summary="One session of the fleet")
    async def session(host: HostName, session_id: SessionId, caller: Who) -> FleetSessionOut:
        the_desk = desk()
        found = await the_desk.get_session(caller, f"{host}/{session_id}")
        return FleetSessionOut(**fleet_session_json(found, caller, the_desk.name))

    @router.get(
        "/sessions/{host}/{session_id}/thumbnail", summary="A JPEG of a fleet session's screen",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "not changed (ETag)"}},
    )
    async def thumbnail(
        host: HostName, session_id: SessionId, request: Request, caller: Who,
        size: Annotated[Size, Query(description="small, medium or large")] = "medium",
    ) -> Response:
        the_desk = desk()
        given = _etags(request.headers.get("if-none-match", ""))
        if host == the_desk.name:
            thumb = await thumbnails.for_caller(caller, session_id, size)
            jpeg, etag, version, fresh = thumb.jpeg, thumb.etag, thumb.version, thumb.etag not in given
        else:
            try:
                remote = await the_desk.thumbnail(caller, host, session_id, size, next(iter(given), None))
                jpeg, etag, version = remote.jpeg, remote.etag, remote.version
                fresh = not remote.not_modified and etag not in given
            except HostUnreachable as exc:  # a card that says why, rather than a broken image
                thumb = placeholder(size, str(exc))
                jpeg, etag, version, fresh = thumb.jpeg, thumb.etag, 0, thumb.etag not in given
        headers = {"ETag": etag, "Cache-Control": "private, no-cache", "X-Thumbnail-Version": str(version)}
        if not fresh:
            return Response(status_code=304, headers=headers)
        return Response(jpeg, media_type="image/jpeg", headers=headers)

    return router


def _etags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def fleet_page_router(settings: Settings, auth: Authenticator, fleet: FleetNode | None) -> APIRouter:
    """GET /fleet: every host's sessions as cards grouped by host, for Dashboard users and
    administrators (static/fleet.js does the rest over the API)."""
    router = APIRouter(include_in_schema=False)
    templates = make_templates()

    @router.get("/fleet", response_class=HTMLResponse)
    async def fleet_page(request: Request) -> Response:
        caller = auth.identify(request)
        if caller is None:
            return RedirectResponse("/signin", status_code=303)
        if fleet is None or caller.role == Role.STANDARD:
            return RedirectResponse("/", status_code=303)
        language = i18n.negotiate(request.headers.get("accept-language", ""), i18n.server_language())
        context = {"caller": caller, "csrf": csrf_token(request), "settings": settings,
                   "lang": i18n.bcp47(language), "strings": i18n.script_strings(STATIC, language),
                   "local": fleet.name}
        with i18n.using(language):
            response = templates.TemplateResponse(request, "fleet.html", context)
        response.headers["Content-Language"] = i18n.bcp47(language)
        response.headers["Vary"] = "Accept-Language, Cookie"
        return response

    return router
