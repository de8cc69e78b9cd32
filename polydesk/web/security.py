"""Security headers on every answer: a Content-Security-Policy without 'unsafe-inline', and friends.

Pages carry no inline script, style or handler (the JavaScript is in
static/dashboard.js), so the policy can forbid them all; whatever a user name
or message smuggles into a page cannot run.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(img_src: str) -> str:
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {img_src}",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ))


CSP = _policy("'self'")
# Pages that show a session through noVNC: it draws JPEG rectangles (Tight encoding) and the
# remote cursor from data: URLs. Images only; scripts, styles and connections stay 'self'.
STATION_CSP = _policy("'self' data:")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# A raster picture is no document: a policy for its scripts, frames, features or referrer
# says nothing to it, while nosniff and CORP (only our own pages may embed a thumbnail)
# do. The rest would be ~450 bytes on every thumbnail, a sixth of what a Dashboard gets.
RASTER_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
RASTER_HEADERS = ("X-Content-Type-Options", "Cross-Origin-Resource-Policy")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                raster = headers.get("content-type", "").startswith(RASTER_TYPES)
                for name, value in HEADERS.items():
                    if raster and name not in RASTER_HEADERS:
                        continue
                    if name not in headers:
                        headers[name] = value
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
