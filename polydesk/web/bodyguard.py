"""Who calls is settled before a request's body is read, and no body is read past a cap.

FastAPI reads and parses a route's body before it resolves the route's dependencies, the
caller among them: an anonymous 400 MiB POST took the daemon from 88 MB to 893 MB, and an
anonymous request had its JSON parsed (and got 400 for bad JSON, which tells a prober what
the route wants). So this middleware, inside the cookie middleware and before any route:

- answers 401 to a request that carries a body but no caller (no peer credentials, token or
  web sign-in), without reading a byte of the body; only the sign-in and sign-out forms take
  anonymous bodies, of at most ``ANONYMOUS_LIMIT`` bytes;
- answers 413 to a body declared (Content-Length) or found (chunked) larger than the
  ``max_request_body`` setting, reading at most that much.

Both answers close the connection, so an unread body is not waited for.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polydesk.web.auth import Authenticator
from polydesk.web.errors import error_response

ANONYMOUS_PATHS = frozenset({"/signin", "/signout"})  # the forms someone not signed in may send
ANONYMOUS_LIMIT = 16 * 1024  # a user name, a password and a CSRF token


def too_large(limit: int) -> str:
    return f"request body too large: at most {limit} bytes (setting max_request_body)"


class BodyGuard:
    def __init__(self, app: ASGIApp, auth: Authenticator, limit: int) -> None:
        self.app = app
        self.auth = auth
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        has_body = (declared is not None and declared != "0") or "transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return
        anonymous = scope["path"] in ANONYMOUS_PATHS
        if not anonymous and self.auth.identify(HTTPConnection(scope)) is None:
            await _refuse(scope, receive, send, 401, "not-signed-in",
                          "not signed in: use the Unix socket, a token or the log-on page")
            return
        limit = min(self.limit, ANONYMOUS_LIMIT) if anonymous else self.limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, 413, "too-large", too_large(limit))
            return
        await self.app(scope, _capped(receive, limit), send)


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that fails with 413 once more than ``limit`` bytes of body came."""
    got = 0

    async def capped() -> Message:
        nonlocal got
        message = await receive()
        if message["type"] == "http.request":
            got += len(message.get("body", b""))
            if got > limit:
                raise HTTPException(413, too_large(limit), headers={"Connection": "close"})
        return message

    return capped


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    response = error_response(status, code, message, headers={"Connection": "close"})
    await response(scope, receive, send)
