"""The web interface: REST API, pages, events. ``create_app`` builds it from a manager."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from polydesk.config import Settings
from polydesk.manager import Manager
from polydesk.model import (
    HostError,
    InvalidRequest,
    NotPermitted,
    PolydeskError,
    StoreError,
    UnknownSession,
    UnknownUser,
)
from polydesk.thumbnails import Thumbnailer
from polydesk.web.api import api_router
from polydesk.web.auth import Authenticator, CookieSessions, load_secret
from polydesk.web.events import events_router
from polydesk.web.logon import LogonChecker, TooManyAttempts
from polydesk.web.pages import pages_router
from polydesk.web.security import SecurityHeaders
from polydesk.web.thumbs import thumbnails_router

STATIC = Path(__file__).parent / "static"

_STATUS: dict[type[PolydeskError], int] = {
    UnknownSession: 404,
from polydesk.web.vncproxy import vnc_router
    UnknownUser: 404,
    NotPermitted: 403,
    InvalidRequest: 400,
    HostError: 502,
    StoreError: 503,
    TooManyAttempts: 429,
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(
    manager: Manager,
    settings: Settings,
    thumbnails: Thumbnailer | None = None,
    logon: LogonChecker | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Polydesk",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    auth = Authenticator(settings, manager.store.token_user)
    thumbnails = thumbnails or Thumbnailer()
    app.state.manager = manager
    app.state.auth = auth
    app.state.thumbnails = thumbnails
    app.include_router(api_router(manager))
    app.include_router(thumbnails_router(manager, thumbnails))
    app.include_router(events_router(manager, thumbnails, auth))
    app.include_router(pages_router(manager, auth, logon or LogonChecker()))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost last: headers go on every answer, errors included; cookies are read before auth.
    app.add_middleware(CookieSessions, secret=load_secret(settings.state_path / "web-secret"))
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(PolydeskError)
    async def polydesk_error(request: Request, exc: PolydeskError) -> JSONResponse:
        status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 500)
        return _error(status, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "not-signed-in", 403: "not-permitted", 404: "not-found"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return _error(400, "invalid-request", problems or "malformed request")

    return app
    app.include_router(vnc_router(manager, auth))
