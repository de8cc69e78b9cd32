"""The web pages: sign-in, the Dashboard (Dashboard users, administrators), a standard user's own page.

Server-rendered with Jinja2 (autoescaped); htmx and static/dashboard.js do the
rest in the browser over the same REST API and events socket as every other
client. Every action goes through the manager's use cases.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from polydesk.config.settings import Settings
from polydesk.core import i18n, policy
from polydesk.core.events import station_of
from polydesk.core.i18n import N_
from polydesk.core.model import Caller, NotPermitted, Outcome, Role, Session, Status, Target
from polydesk.manager.manager import Manager
from polydesk.thumbnails.feed import SIZES
from polydesk.web.auth import CSRF_FIELD, Authenticator, CsrfError, check_csrf, csrf_token
from polydesk.web.routes import privacy
from polydesk.web.routes.holds import HoldsDesk, hold_out
from polydesk.web.routes.rooms import StationCookies
from polydesk.web.security import STATION_CSP
from polydesk.web.signin import (
    DEVICE_COOKIE,
    DEVICE_MAX_AGE,
    Client,
    DeviceCookies,
    SigninChecker,
    TooManyAttempts,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
# Labels are marked here (N_) and translated where they are shown (the "tr" filter).
STATE_LABELS = {"active": N_("Active"), "disconnected": N_("Disconnected"), "logging-off": N_("Logging off"),
                "ended": N_("Ended")}
STATUS_LABELS = {
    "ended": N_("Logged off"), "logging-off": N_("Logging off"), "disconnected": N_("Disconnected"),
    "blocked": N_("Blocked"), "unblocked": N_("Unblocked"), "shown": N_("Message shown"),
    "started": N_("Started"), "resumed": N_("Resumed"), "would-end": N_("Would log off"),
    "would-do": N_("Would do"), "resized": N_("Resized"), "unknown-session": N_("Unknown session"),
    "not-permitted": N_("Not permitted"), "failed": N_("Failed"),
}
ROLE_LABELS = {"admin": N_("administrator"), "dashboard": N_("Dashboard user"),
               "standard": N_("standard user")}


# What the sign-in page says after a station signed out (?then=...).
FAREWELLS = {
    "disconnected": N_("Disconnected. Your session keeps running: log on again, here or anywhere, to "
                       "resume it."),
    "logged-off": N_("You are logged off."),
    "session-ended": N_("Your session has ended. Log on again to start a new one."),
    "session-disconnected": N_("Your session was disconnected. Log on again to resume it."),
}


def format_idle(seconds: float | None) -> str:
    """In the page's language: called while a page is rendered."""
    _ = i18n.gettext
    if seconds is None:
        return _("idle —")
    if seconds < 60:
        return _("in use")
    minutes = int(seconds // 60)
    if minutes < 60:
        return _("idle {minutes} min").format(minutes=minutes)
    return _("idle {hours} h {minutes} min").format(hours=minutes // 60, minutes=f"{minutes % 60:02d}")


def format_clock(epoch: float) -> str:
    return time.strftime("%H:%M", time.localtime(epoch))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    # {{ _("...") }} for the templates' own words (newstyle: placeholders are escaped);
    # {{ value | tr }} for a label chosen at run time (escaped as any value).
    templates.env.add_extension("jinja2.ext.i18n")
    templates.env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True)
    templates.env.filters["tr"] = i18n.gettext
    templates.env.filters["idle"] = format_idle
    templates.env.filters["clock"] = format_clock
    templates.env.filters["station"] = station_of
    templates.env.globals.update(STATE_LABELS=STATE_LABELS, STATUS_LABELS=STATUS_LABELS,
                                 ROLE_LABELS=ROLE_LABELS)
    return templates


def _too_many(what: str, minutes: int) -> str:
    """The refusal of a held-back sign-in, in the page's language."""
    if what == "account":
        return i18n.ngettext("Too many failed log-on attempts for this account. Try again in %(n)d minute.",
                             "Too many failed log-on attempts for this account. Try again in %(n)d minutes.",
                             minutes) % {"n": minutes}
    if what == "address":
        return i18n.ngettext("Too many failed log-on attempts for this address. Try again in %(n)d minute.",
                             "Too many failed log-on attempts for this address. Try again in %(n)d minutes.",
                             minutes) % {"n": minutes}
    return i18n.ngettext("Too many failed log-on attempts on this server. Try again in %(n)d minute.",
                         "Too many failed log-on attempts on this server. Try again in %(n)d minutes.",
                         minutes) % {"n": minutes}


def pages_router(manager: Manager, settings: Settings, auth: Authenticator, checker: SigninChecker,
                 devices: DeviceCookies, holds: HoldsDesk, notice: privacy.Notice,
                 stations: StationCookies | None = None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = make_templates()

    def language(request: Request) -> str:
        """The browser's language if we have it (Accept-Language), else the server's."""
        return i18n.negotiate(request.headers.get("accept-language", ""), i18n.server_language())

    def fragment(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        lang = language(request)
        with i18n.using(lang):  # the template is rendered here, in the page's language
            response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Content-Language"] = i18n.bcp47(lang)
        response.headers["Vary"] = "Accept-Language, Cookie"
        return response

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = language(request)
        context.setdefault("caller", None)
        context.update(csrf=csrf_token(request) if "session" in request.scope else "",
                       settings=settings, lang=i18n.bcp47(lang),
                       # shown as the block's placeholder: each session gets it in its own language
                       block_default=i18n.translations(lang).gettext(settings.block_message),
                       strings=i18n.script_strings(STATIC, lang))  # for the pages' scripts: t("...")
        return fragment(request, name, context, status)

    def card_context(caller: Caller, session: Session, size: str) -> dict[str, Any]:
        return {"s": session, "size": size, "thumb_width": SIZES[size],
                "watchable": bool(manager.may_view(caller, session)),
                "selectable": caller.role != Role.STANDARD}

    def station(request: Request, caller: Caller) -> HTMLResponse:
        """The caller's own desktop, full window; the page starts or resumes the session itself
        (a POST with the CSRF token, never a side effect of this GET)."""
        response = render(request, "station.html", caller=caller,
                          home="" if caller.role == Role.STANDARD else "/",
                          notice=notice.due(caller), privacy_text=privacy.TEXT)
        response.headers["Content-Security-Policy"] = STATION_CSP
        if stations is not None:  # this browser is a named station from its first use on
            with i18n.using(language(request)):
                stations.ensure(request, response)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        """A standard user lands on their desktop (MultiPoint's station); the others on the Dashboard."""
        caller = auth.identify(request)
        if caller is None:
            return RedirectResponse("/signin", status_code=303)
        if caller.role == Role.STANDARD:
            return station(request, caller)
        sessions = await manager.list_sessions(caller)
        shown = sorted((s for s in sessions if manager.on_dashboard(caller, s)), key=lambda s: s.user)
        response = render(request, "dashboard.html", caller=caller,
                          cards=[card_context(caller, s, "medium") for s in shown])
        response.headers["Content-Security-Policy"] = STATION_CSP  # its enlarged view is a station
        return response

    @router.get("/desktop", response_class=HTMLResponse)
    async def desktop(request: Request) -> Response:
        """Anyone's own desktop (Dashboard users and administrators open theirs from the Dashboard)."""
        caller = auth.identify(request)
        if caller is None:
            return RedirectResponse("/signin", status_code=303)
        return station(request, caller)

    @router.get("/session", response_class=HTMLResponse)
    async def own_page(request: Request) -> Response:
        """The caller's own sessions as cards, with Start, Disconnect and Log off buttons."""
        caller = auth.identify(request)
        if caller is None:
            return RedirectResponse("/signin", status_code=303)
        own = [s for s in await manager.list_sessions(caller) if policy.owns(caller, s)]
        return render(request, "own.html", caller=caller,
                      cards=[card_context(caller, s, "large") for s in own],
                      notice=notice.due(caller), privacy_text=privacy.TEXT)

    @router.get("/signin", response_class=HTMLResponse)
    async def signin_page(request: Request, then: str = "") -> Response:
        if auth.identify(request) is not None:
            return RedirectResponse("/", status_code=303)
        return render(request, "signin.html", farewell=FAREWELLS.get(then))

    @router.get("/login")
    async def old_signin_address(request: Request) -> Response:
        """The sign-in page's address before it was /signin: lab PCs keep it as a bookmark.
        Not a permanent redirect, which browsers would keep even if this daemon were downgraded."""
        query = request.url.query
        return RedirectResponse("/signin" + (f"?{query}" if query else ""), status_code=303)

    @router.post("/signin", response_class=HTMLResponse)
    async def signin(request: Request) -> Response:
        form = await request.form()
        user, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
        try:
            check_csrf(request, str(form.get(CSRF_FIELD, "")))
        except CsrfError:
            return render(request, "signin.html", status=403, user=user,
                          error=N_("The log-on form had expired. Please enter your password again."))
        # The peer's address, or what a proxy of trusted_proxies says (uvicorn, server.py).
        address = request.client.host if request.client else "unknown"
        client = Client(address, devices.device(user, request.cookies.get(DEVICE_COOKIE)))
        try:
            ok = await checker.check(user, password, client)
        except TooManyAttempts as exc:
            log.warning("web sign-in of %r from %s refused: %s", user, address, exc)
            with i18n.using(language(request)):
                minutes = max(1, -(-exc.retry_after // 60))
                error = _too_many(exc.what, minutes)
            response = render(request, "signin.html", status=429, error=error, user=user)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if not ok:
            log.info("web sign-in of %r from %s failed", user, address)
            return render(request, "signin.html", status=401, user=user,
                          error=N_("Wrong user name or password."))
        auth.sign_in(request, user)
        log.info("web sign-in of %r from %s", user, address)
        signed_in = RedirectResponse("/", status_code=303)
        # This browser is now known for this account: others' guessing does not hold it back.
        signed_in.set_cookie(DEVICE_COOKIE, devices.issue(user), max_age=DEVICE_MAX_AGE, path="/signin",
                             httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return signed_in

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        form = await request.form()
        if auth.identify(request) is not None:
            check_csrf(request, str(form.get(CSRF_FIELD, "")))
            auth.sign_out(request)
        then = str(form.get("then", ""))  # the station says why it signs out: the sign-in page tells
        return RedirectResponse(f"/signin?then={then}" if then in FAREWELLS else "/signin", status_code=303)

    @router.get("/signin-holds", response_class=HTMLResponse)
    async def holds_page(request: Request, cleared: int | None = None) -> Response:
        caller = auth.identify(request)
        if caller is None:
            return RedirectResponse("/signin", status_code=303)
        try:
            rows = holds.holds(caller)
        except NotPermitted:
            return render(request, "holds.html", status=403, caller=caller, rows=None, cleared=None)
        now = time.time()
        return render(request, "holds.html", caller=caller, rows=[hold_out(h, now) for h in rows],
                      cleared=cleared)

    @router.post("/signin-holds/clear")
    async def clear_hold(request: Request) -> Response:
        caller = auth.require(request, "GET")
        form = await request.form()
        check_csrf(request, str(form.get(CSRF_FIELD, "")))
        user, address = str(form.get("user", "")) or None, str(form.get("address", "")) or None
        cleared = holds.unlock(caller, user, address, form.get("all") == "1")
        return RedirectResponse(f"/signin-holds?cleared={cleared}", status_code=303)

    @router.get("/ui/cards/{session_id}", response_class=HTMLResponse)
    async def card(request: Request, session_id: str, size: str = "medium") -> Response:
        """One session's card, for the grid to add or refresh it (htmx)."""
        caller = auth.require(request)
        session = await manager.get_session(caller, session_id)
        shown = (policy.owns(caller, session) if caller.role == Role.STANDARD
                 else manager.on_dashboard(caller, session))
        if not shown:
            raise NotPermitted(f"session {session_id} is not shown on your page")
        context = card_context(caller, session, size if size in SIZES else "medium")
        return fragment(request, "_card.html", context)

    @router.post("/ui/own/{action}", response_class=HTMLResponse)
    async def own_action(request: Request, action: str) -> Response:
        """A signed-in user's own session: start it, disconnect it or log it off."""
        caller = auth.require(request, request.method)
        outcomes: list[Outcome]
        if action == "logon":
            asked = i18n.asked_language(request.headers.get("accept-language", ""))
            session, resumed = await manager.logon(caller, caller.user, language=asked)
            outcomes = [Outcome(session.id, Status.RESUMED if resumed else Status.STARTED, caller.user)]
        elif action == "disconnect":
            outcomes = await manager.disconnect(caller, Target())
        elif action == "logoff":
            outcomes = await manager.logoff(caller, Target(), grace=0, wait=False)
        else:
            return HTMLResponse("unknown action", status_code=404)
        return fragment(request, "_results.html", {"outcomes": outcomes})

    return router
