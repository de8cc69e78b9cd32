"""/api/v1/fleet: the hosts of the fleet and all their sessions, seen from this host.

Session ids here are ``host/id``. Actions on them go through the usual
``POST /api/v1/sessions/<action>`` routes, which in fleet mode are wired to
``FleetDesk``: ``{"ids": ["lab2/7"]}``, ``{"all": true, "fleet": true}`` or
``{"all": true, "host": "lab2"}``. Without fleet mode every route here answers
404 (unknown-host), saying that fleet mode is off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi import Query as Param
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from polydesk.config.fleet import HOST_NAME
from polydesk.config.settings import Settings
from polydesk.core import i18n
from polydesk.core.model import Caller, Role, UnknownHost
from polydesk.fleet.desk import FleetDesk, FleetSession, HostUnreachable
from polydesk.fleet.listing import MAX_PAGE, MAX_QUERY, STATES, Query
from polydesk.manager.viewing import ScreenThumbnails
from polydesk.thumbnails.feed import placeholder
from polydesk.web.auth import Authenticator, csrf_token
from polydesk.web.routes.api import ERRORS, SessionOut, Who
from polydesk.web.routes.pages import STATIC, make_templates
from polydesk.web.routes.thumbs import Size

if TYPE_CHECKING:
    from polydesk.fleet.node import FleetNode  # imports nats: only in fleet mode

FLEET_OFF = "fleet mode is off on this host (no [fleet] in its configuration)"
DEFAULT_PAGE = 100  # a cursor given without a limit
SESSIONS_HELP = (
    "Without `limit` or `cursor`: a JSON list of every session that matches (all of the fleet's "
    "when no filter is given). With `limit` (at most 500) or `cursor`: one page, as an object "
    "`{sessions, next, total}`; `next` is an opaque cursor for the following page (null on the "
    "last), valid for 15 minutes with the same host, q and state. Pages follow one order (this "
    "host first, then the others by name, each host's sessions by id) and a cursor names a place "
    "in it, so a session present throughout is listed exactly once while others come and go.")


class HostOut(BaseModel):
    name: str
    online: bool
    local: bool
    sessions: int
    last_seen_s: float | None
    listen: str | None
    public_key: str | None
    state: str
    states: dict[str, int] = Field(description="Its sessions by state (active, disconnected, "
                                               "logging-off), and how many are blocked (blocked)")


class FleetSessionOut(SessionOut):
    fleet_host: str
    host_online: bool


class FleetPageOut(BaseModel):
    """One page of the fleet's sessions (asked for with limit or cursor)."""

    sessions: list[FleetSessionOut]
    next: str | None = Field(description="The cursor of the next page; null on the last page")
    total: int = Field(description="How many sessions the query matches in all")


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
    async def hosts(caller: Who) -> Response:
        # A thousand hosts: their views as they are (the shape HostOut documents), not a model each.
        return Response(json.dumps([vars(view) for view in desk().hosts()]).encode(),
                        media_type="application/json")

    @router.get("/sessions", response_model=list[FleetSessionOut] | FleetPageOut,
                summary="The sessions of the fleet you may see (ids host/id): all, or a page",
                description=SESSIONS_HELP)
    async def sessions(
        caller: Who,
        host: Annotated[str | None, Param(pattern=HOST_NAME.pattern, description="Only this host")] = None,
        q: Annotated[str | None, Param(max_length=MAX_QUERY, description=(
            "Search: sessions whose id (host/id), user, client, display or station contains this "
            "text (case ignored)"))] = None,
        state: Annotated[str | None, Param(description="Only sessions in this state: " + ", ".join(STATES))
                         ] = None,
        limit: Annotated[int | None, Param(ge=1, le=MAX_PAGE, description=(
            f"Answer one page of at most this many sessions (1 to {MAX_PAGE}), as an object"))] = None,
        cursor: Annotated[str | None, Param(max_length=1000, description=(
            "The next page: the `next` of the previous page, with the same host, q and state"))] = None,
    ) -> Response:
        the_desk = desk()
        query = Query.checked(host, q, state)
        # Thousands of sessions: the JSON each host's session was given when it last changed (the
        # shape FleetSessionOut documents), closed with what depends on the caller and the moment.
        # A model per session would cost more than everything else.
        if limit is None and cursor is None:
            pieces = await the_desk.list_json(caller, query)
            # Sent a piece at a time as the connection drains: one write of 20 MB would be copied
            # again and again in asyncio's write buffer, and hold the daemon's loop meanwhile.
            return StreamingResponse(_grouped(pieces), media_type="application/json",
                                     headers={"Content-Length": str(sum(map(len, pieces)))})
        body = await the_desk.page_json(caller, query, limit or DEFAULT_PAGE, cursor)
        return Response(body, media_type="application/json")

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
        size: Annotated[Size, Param(description="small, medium or large")] = "medium",
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


async def _grouped(pieces: list[bytes], size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """The pieces joined into writes of about ``size`` bytes."""
    group: list[bytes] = []
    length = 0
    for piece in pieces:
        group.append(piece)
        length += len(piece)
        if length >= size:
            yield b"".join(group)
            group, length = [], 0
    if group:
        yield b"".join(group)


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
