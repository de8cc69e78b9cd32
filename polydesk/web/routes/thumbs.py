"""The thumbnail route, and its fast path (who may watch which screen is the manager's: viewing.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from polydesk.core.model import PolydeskError
from polydesk.manager.viewing import ScreenThumbnails
from polydesk.thumbnails.feed import SIZES, Thumbnail
from polydesk.web.auth import Authenticator
from polydesk.web.routes.api import ERRORS, Who

Size = Literal["small", "medium", "large"]


def thumbnails_router(thumbnails: ScreenThumbnails) -> APIRouter:
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
        thumb = await thumbnails.for_caller(caller, session_id, size)
        return _answer(thumb, request.headers.get("if-none-match", ""))

    return router


def _answer(thumb: Thumbnail, if_none_match: str) -> Response:
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

    def __init__(self, app: ASGIApp, thumbnails: ScreenThumbnails, auth: Authenticator) -> None:
        self.app = app
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
            session = self.thumbnails.watchable(caller, session_id)
        except PolydeskError:
            return None
        thumb = await self.thumbnails.of(session, sizes[0])
        return _answer(thumb, conn.headers.get("if-none-match", ""))


@dataclass(frozen=True)
class _Route:
    path: str


_PATH = re.compile(r"/api/v1/sessions/([^/]+)/thumbnail")
_ROUTE = _Route("/api/v1/sessions/{session_id}/thumbnail")


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
