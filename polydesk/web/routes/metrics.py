"""``GET /metrics`` (Prometheus) and the middleware that times every HTTP request.

Who may scrape, without any account: a client on the API socket, or a client on a loopback
address when ``listen`` itself is a loopback address and the request did not come through a
proxy. Anyone else needs the ``metrics_token`` setting's token (``Authorization: Bearer``);
without that setting they are refused. The proxy test matters because the documented way to
reach Polydesk from other machines is a reverse proxy on the same host: its requests arrive
from 127.0.0.1, but carry X-Forwarded-* or Forwarded headers.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polydesk.config.settings import Settings
from polydesk.core.model import NotPermitted
from polydesk.manager.metrics import Metrics
from polydesk.web.server import PEER_KEY

PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_scrape(scope: Scope, settings: Settings, authorization: str) -> bool:
    if PEER_KEY in scope:
        return True
    token = settings.metrics_token
    if token and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return True
    client = scope.get("client")
    proxied = any(name in PROXY_HEADERS for name, _ in scope.get("headers", []))
    listen_host = settings.listen.rpartition(":")[0]
    return (is_loopback(listen_host) and client is not None and is_loopback(str(client[0]))
            and not proxied)


def metrics_router(metrics: Metrics, settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def scrape(request: Request) -> Response:
        if not settings.metrics:
            return Response("metrics are off (setting metrics = false)\n", status_code=404,
                            media_type="text/plain")
        if not may_scrape(request.scope, settings, request.headers.get("authorization", "")):
            raise NotPermitted("/metrics is open only to local clients of a loopback listen address "
                               "and the API socket; elsewhere send the metrics_token setting's token")
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return router


class RequestTimer:
    """Times each HTTP request, from its arrival to the end of its answer, by route template
    (never the raw path: ids in paths would make a series per session)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # WebSockets (events, stations) live for hours: not latency
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._observe(scope, status, start)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            self._observe(scope, 500, start)
            raise

    def _observe(self, scope: Scope, status: int, start: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
