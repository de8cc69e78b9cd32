"""Who is calling: the Unix socket's peer credentials, a bearer token, or a web sign-in.

The caller's role is worked out on every request from the account's current
groups (read at most ``role_cache_seconds`` ago), so removing someone from
polydesk-dashboard takes effect within seconds, whichever way they call.

Web sign-ins live in a signed cookie (Starlette's SessionMiddleware, HttpOnly,
SameSite=Strict, Secure over https) holding the user, a random session id and
the CSRF token of that web session. A cookie works only while its session id is
in the state database's sign-ins: signing out deletes it there, so a copy of the
cookie stops working too, across restarts.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from fastapi import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from polydesk.core.model import Account, Caller, NotPermitted, Role, StoreError, UnknownUser
from polydesk.manager.tokens import token_digest
from polydesk.web.server import PEER_KEY

SESSION_USER_KEY = "user"
CSRF_KEY = "csrf"
SID_KEY = "sid"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
COOKIE_NAME = "polydesk_session"
SESSION_MAX_AGE = 12 * 3600  # a signed-in browser must sign in again after this (seconds)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

__all__ = ["Authenticator", "CsrfError", "token_digest"]

log = logging.getLogger(__name__)


class People(Protocol):
    """Accounts and their roles, as the manager knows them (groups read again on use)."""

    def account(self, name: str) -> Account: ...

    def account_by_uid(self, uid: int) -> Account: ...

    def role_of(self, account: Account) -> Role: ...


class SignInRecords(Protocol):
    """Where web sign-ins outlive the daemon, and which API token is whose (the Store)."""

    def token_user(self, digest: str) -> str | None: ...

    def signins(self) -> list[tuple[str, str, float]]: ...

    def add_signin(self, sid: str, user: str, expires: float) -> None: ...

    def drop_signin(self, sid: str) -> None: ...


class CsrfError(NotPermitted):
    code = "csrf-token"


def load_secret(path: Path) -> str:
    """The key that signs session cookies: made once, kept 0600, so restarts keep people signed in."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if len(secret) >= 32:
            return secret
        path.unlink()  # empty or truncated (a crash while writing it): make a new one
        return load_secret(path)
    with os.fdopen(fd, "w") as file:
        secret = secrets.token_urlsafe(48)
        file.write(secret + "\n")
    return secret


class CookieSessions:
    """SessionMiddleware with the Secure flag exactly when the request came over https."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        common = {"secret_key": secret, "session_cookie": COOKIE_NAME, "max_age": SESSION_MAX_AGE,
                  "same_site": "strict"}
        self.plain = SessionMiddleware(app, https_only=False, **common)  # type: ignore[arg-type]
        self.secure = SessionMiddleware(app, https_only=True, **common)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or PEER_KEY in scope:
            await self.plain.app(scope, receive, send)  # the Unix socket never uses cookies
            return
        secure = scope.get("scheme") in ("https", "wss")
        await (self.secure if secure else self.plain)(scope, receive, send)


class Authenticator:
    def __init__(self, people: People, records: SignInRecords) -> None:
        self.people = people
        self.records = records
        # web session id -> (user, when it ends): what the database holds, read once
        self._signins = {sid: (user, expires) for sid, user, expires in records.signins()}

    def caller_for(self, account: Account, via: str) -> Caller:
        return Caller(user=account.name, uid=account.uid, role=self.people.role_of(account), via=via)

    def identify(self, conn: HTTPConnection) -> Caller | None:
        peer = conn.scope.get(PEER_KEY)
        if peer is not None:
            try:
                return self.caller_for(self.people.account_by_uid(peer[1]), "cli")
            except UnknownUser:
                return None
        header = conn.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = self.records.token_user(token_digest(header[7:].strip()))
            return self._by_name(user, "token") if user else None
        if "session" in conn.scope:
            name = conn.session.get(SESSION_USER_KEY)
            sid = conn.session.get(SID_KEY)
            signin = self._signins.get(sid) if isinstance(sid, str) else None
            if signin is not None and signin[0] == name and signin[1] > time.time():
                return self._by_name(signin[0], "web")
        return None

    def _by_name(self, name: str, via: str) -> Caller | None:
        try:
            return self.caller_for(self.people.account(name), via)
        except UnknownUser:
            return None

    def require(self, conn: HTTPConnection, method: str = "GET") -> Caller:
        """The caller, or 401; with a cookie, state-changing methods also need the CSRF token."""
        caller = self.identify(conn)
        if caller is None:
            raise HTTPException(401, "not signed in: use the Unix socket, a token or the log-on page")
        if caller.via == "web" and method not in SAFE_METHODS:
            check_csrf(conn, conn.headers.get(CSRF_HEADER))
        return caller

    # web sessions

    def sign_in(self, conn: HTTPConnection, user: str) -> None:
        """A fresh web session (new id and CSRF token): nothing from before the sign-in survives."""
        sid, now = secrets.token_urlsafe(18), time.time()
        self.records.add_signin(sid, user, now + SESSION_MAX_AGE)  # a full disk refuses the sign-in
        self._signins = {s: v for s, v in self._signins.items() if v[1] > now}
        self._signins[sid] = (user, now + SESSION_MAX_AGE)
        conn.session.clear()
        conn.session.update({SESSION_USER_KEY: user, SID_KEY: sid,
                             CSRF_KEY: secrets.token_urlsafe(24), "iat": int(now)})

    def end_signins(self, sids: set[str]) -> int:
        """End these web sign-ins (someone else ended or disconnected the session they were the
        station of): their cookies stop working at once. How many were still signed in."""
        ended = [sid for sid in sids if self._signins.pop(sid, None) is not None]
        for sid in ended:
            try:
                self.records.drop_signin(sid)
            except StoreError as exc:  # signed out until a restart at least; say so
                log.error("ending a web sign-in could not be saved: %s", exc)
        return len(ended)

    def signin_of(self, conn: HTTPConnection) -> str | None:
        """The id of the web sign-in this request's cookie carries, if it is one that works."""
        sid = conn.session.get(SID_KEY) if "session" in conn.scope else None
        return sid if isinstance(sid, str) and sid in self._signins else None

    def sign_out(self, conn: HTTPConnection) -> None:
        sid = conn.session.get(SID_KEY)
        if isinstance(sid, str) and self._signins.pop(sid, None) is not None:
            try:
                self.records.drop_signin(sid)
            except StoreError as exc:  # signed out until a restart at least; say so
                log.error("signing out web session of %s could not be saved: %s",
                          conn.session.get(SESSION_USER_KEY), exc)
        conn.session.clear()


def csrf_token(conn: HTTPConnection) -> str:
    """This browser's CSRF token, made on first use (before sign-in too: the sign-in form needs one)."""
    token = conn.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        conn.session[CSRF_KEY] = token
    return token


def check_csrf(conn: HTTPConnection, given: str | None) -> None:
    expected = conn.session.get(CSRF_KEY) if "session" in conn.scope else None
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        raise CsrfError("missing or wrong CSRF token: reload the page and try again "
                        f"(send it in the {CSRF_HEADER} header or the {CSRF_FIELD} form field)")
