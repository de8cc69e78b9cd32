"""The web interface: REST API, pages, events. ``create_app`` builds it from a manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from polydesk.config.settings import Settings
from polydesk.core.model import (
    BackendError,
    InvalidRequest,
    NotPermitted,
    PolydeskError,
    StoreError,
    UnknownHost,
    UnknownName,
    UnknownSession,
    UnknownToken,
    UnknownUser,
)
from polydesk.manager.manager import Manager
from polydesk.manager.metrics import Metrics
from polydesk.thumbnails.feed import Thumbnailer
from polydesk.web.auth import Authenticator, CookieSessions, load_secret
from polydesk.web.bodyguard import BodyGuard
from polydesk.web.routes.api import api_router
from polydesk.web.routes.events import events_router
from polydesk.web.routes.fleet import fleet_page_router, fleet_router
from polydesk.web.routes.holds import HoldsDesk, holds_router
from polydesk.web.routes.metrics import RequestTimer, metrics_router
from polydesk.web.routes.pages import pages_router
from polydesk.web.routes.privacy import privacy_router
from polydesk.web.routes.rooms import StationCookies, rooms_router
from polydesk.web.routes.thumbs import ThumbnailFastPath, thumbnails_router
from polydesk.web.routes.vncproxy import vnc_router
from polydesk.web.security import SecurityHeaders
from polydesk.web.signin import DeviceCookies, FailureLimiter, SigninChecker, TooManyAttempts

if TYPE_CHECKING:
    from polydesk.fleet.node import FleetNode  # imports nats: only in fleet mode

STATIC = Path(__file__).parent / "static"

_STATUS: dict[type[PolydeskError], int] = {
    UnknownSession: 404,
    UnknownUser: 404,
    UnknownToken: 404,
    UnknownHost: 404,
    UnknownName: 404,
    NotPermitted: 403,
    InvalidRequest: 400,
    BackendError: 502,
    StoreError: 503,
    TooManyAttempts: 429,
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _allowed_methods(app: FastAPI, path: str) -> str:
    """The methods of the route that owns ``path``: a literal route (/sessions/logoff) before a
    templated one (/sessions/{session_id}) that happens to match it too."""
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)]
    literal = [r for r in routes if "{" not in r.path]
    return ", ".join(sorted({m for r in (literal or routes) for m in r.methods or ()}))


def _without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents 422 on every route; Polydesk answers a malformed request with 400."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema
    return openapi


def create_app(
    manager: Manager,
    settings: Settings,
    thumbnails: Thumbnailer | None = None,
    signin: SigninChecker | None = None,
    fleet: FleetNode | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Polydesk",
        version="1",
        openapi_url="/api/v1/openapi.json",
        # No API explorer: FastAPI's loads swagger-ui from a public CDN, unpinned, into the
        # daemon's own origin. The document above is what any OpenAPI viewer opens.
        docs_url=None,
        redoc_url=None,
    )
    secret = load_secret(settings.state_path / "web-secret")
    auth = Authenticator(settings, manager.store.token_user, manager.store,
                         by_uid=manager.accounts.by_uid, by_name=manager.accounts.by_name)
    manager.stations.sign_out = auth.end_signins  # a session ended by another ends its station's sign-ins
    thumbnails = thumbnails or Thumbnailer()
    app.state.manager = manager
    app.state.auth = auth
    app.state.thumbnails = thumbnails
    app.include_router(api_router(manager, fleet.desk if fleet is not None else None))
    app.include_router(fleet_router(manager, thumbnails, fleet))
    app.include_router(fleet_page_router(manager, auth, fleet))
    app.include_router(thumbnails_router(manager, thumbnails))
    app.include_router(events_router(manager, thumbnails, auth))
    station_cookies = StationCookies(secret, manager.station_book)
    app.include_router(vnc_router(manager, auth, station_cookies))
    app.include_router(rooms_router(manager))
    app.include_router(privacy_router(manager.settings, manager.store))
    checker = signin or SigninChecker(limiter=FailureLimiter(manager.store), service=settings.pam_service)
    holds = HoldsDesk(manager, checker.limiter)
    app.include_router(holds_router(holds))
    app.include_router(pages_router(manager, auth, checker, DeviceCookies(secret), holds, station_cookies))
    metrics = app.state.metrics = Metrics(manager.store, thumbnails)
    app.include_router(metrics_router(metrics, settings))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost last: headers go on every answer, errors included; cookies are read before auth.
    app.add_middleware(ThumbnailFastPath, manager=manager, thumbnails=thumbnails, auth=auth)
    # Inside the cookies (it needs them to know the caller), outside every route: no body is read
    # before the caller is known, nor past max_request_body.
    app.add_middleware(BodyGuard, auth=auth, limit=settings.max_request_body)
    app.add_middleware(CookieSessions, secret=secret)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestTimer, metrics=metrics)  # outermost: times the others too

    @app.exception_handler(PolydeskError)
    async def polydesk_error(request: Request, exc: PolydeskError) -> JSONResponse:
        status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 500)
        return _error(status, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "not-signed-in", 403: "not-permitted", 404: "not-found", 413: "too-large"}.get(
            exc.status_code, "error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Retry-After on 429
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(app, request.url.path)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return _error(400, "invalid-request", problems or "malformed request")

    app.openapi = _without_422(app)  # type: ignore[method-assign]
    return app
