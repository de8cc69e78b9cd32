"""The web interface: REST API, pages, events. ``create_app`` builds it from what app.py made:
the manager, the thumbnails, the metrics, the sign-in checker and the web's own records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from polydesk.config.settings import Settings
from polydesk.core.model import PolydeskError
from polydesk.manager.manager import Manager
from polydesk.manager.metrics import Metrics
from polydesk.manager.viewing import ScreenThumbnails
from polydesk.web.auth import Authenticator, CookieSessions, SignInRecords, load_secret
from polydesk.web.bodyguard import BodyGuard
from polydesk.web.errors import error_response, status_of
from polydesk.web.routes.api import api_router
from polydesk.web.routes.apps import apps_router
from polydesk.web.routes.chat import chat_router
from polydesk.web.routes.events import events_router
from polydesk.web.routes.fleet import fleet_page_router, fleet_router
from polydesk.web.routes.holds import HoldsDesk, holds_router
from polydesk.web.routes.metrics import RequestTimer, metrics_router
from polydesk.web.routes.pages import pages_router
from polydesk.web.routes.privacy import Notice, NoticeRecords, privacy_router
from polydesk.web.routes.projection import projection_router
from polydesk.web.routes.rooms import StationCookies, rooms_router
from polydesk.web.routes.thumbs import ThumbnailFastPath, thumbnails_router
from polydesk.web.routes.vncproxy import vnc_router
from polydesk.web.routes.weblimits import web_limits_router
from polydesk.web.security import SecurityHeaders
from polydesk.web.signin import DeviceCookies, SigninChecker

if TYPE_CHECKING:
    from polydesk.fleet.node import FleetNode  # imports nats: only in fleet mode

STATIC = Path(__file__).parent / "static"

class WebRecords(SignInRecords, NoticeRecords, Protocol):
    """What the web keeps in the state database (app.py gives it the Store): web sign-ins, API
    tokens' owners, who dismissed the monitoring notice (the sign-in failures: signin.py's)."""


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
    records: WebRecords,
    thumbnails: ScreenThumbnails,
    metrics: Metrics,
    checker: SigninChecker,
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
    auth = Authenticator(manager, records)
    manager.end_signins_with(auth.end_signins)  # a session ended by another ends its station's sign-ins
    app.state.manager = manager
    app.state.auth = auth
    app.include_router(api_router(manager, fleet.desk if fleet is not None else None))
    app.include_router(apps_router(manager))
    app.include_router(fleet_router(thumbnails, fleet))
    app.include_router(fleet_page_router(settings, auth, fleet))
    app.include_router(thumbnails_router(thumbnails))
    app.include_router(events_router(manager, thumbnails.feed, auth))
    station_cookies = StationCookies(secret, manager)
    app.include_router(vnc_router(manager, auth, station_cookies))
    app.include_router(projection_router(manager))
    app.include_router(rooms_router(manager))
    app.include_router(web_limits_router(manager))
    app.include_router(chat_router(manager))
    notice = Notice(settings, records)
    app.include_router(privacy_router(notice))
    holds = HoldsDesk(manager, checker.limiter)
    app.include_router(holds_router(holds))
    app.include_router(pages_router(manager, settings, auth, checker, DeviceCookies(secret), holds, notice,
                                    station_cookies))
    app.include_router(metrics_router(metrics, settings))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost last: headers go on every answer, errors included; cookies are read before auth.
    app.add_middleware(ThumbnailFastPath, thumbnails=thumbnails, auth=auth)
    # Inside the cookies (it needs them to know the caller), outside every route: no body is read
    # before the caller is known, nor past max_request_body.
    app.add_middleware(BodyGuard, auth=auth, limit=settings.max_request_body)
    app.add_middleware(CookieSessions, secret=secret)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestTimer, metrics=metrics)  # outermost: times the others too

    @app.exception_handler(PolydeskError)
    async def polydesk_error(request: Request, exc: PolydeskError) -> JSONResponse:
        return error_response(status_of(exc), exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "not-signed-in", 403: "not-permitted", 404: "not-found", 413: "too-large"}.get(
            exc.status_code, "error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Retry-After on 429
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(app, request.url.path)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return error_response(400, "invalid-request", problems or "malformed request")

    app.openapi = _without_422(app)  # type: ignore[method-assign]
    return app
