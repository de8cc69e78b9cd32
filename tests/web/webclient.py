"""Helpers for the web tests: signing in through the real log-on page (PAM), sessions, clients."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon
from tests.users import TestUser

COOKIE = "polydesk_session"
VIEWPORT = {"width": 1280, "height": 720}


def logon(daemon: Daemon, user: TestUser) -> str:
    """Start ``user``'s session as root through the CLI; its id."""
    result = daemon.cli("logon", user.name, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session"]["id"])


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


@contextlib.contextmanager
def signin(daemon: Daemon, user: TestUser) -> Iterator[httpx.Client]:
    """A browser-like client signed in with ``user``'s real password; sends its CSRF token."""
    with httpx.Client(base_url=daemon.url, timeout=60) as client:
        page = client.get("/signin")
        answer = client.post("/signin", data={"user": user.name, "password": user.password,
                                             "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 303, answer.text
        home = client.get("/")
        assert home.status_code == 200, home.text
        client.headers["X-CSRF-Token"] = csrf_of(home.text)
        yield client


def socket_client(daemon: Daemon) -> httpx.Client:
    """The daemon's Unix socket, as root (peer credentials: an administrator)."""
    return daemon.client()


@dataclass
class Room:
    """A daemon with an administrator, a Dashboard user and two standard users."""

    daemon: Daemon
    admin: TestUser
    teacher: TestUser
    ana: TestUser
    bia: TestUser


def sign_in(page: Page, daemon: Daemon, user: TestUser) -> None:
    """Sign in at the real sign-in page in the browser, with the account's real password."""
    page.goto(daemon.url + "/")
    expect(page).to_have_url(daemon.url + "/signin")
    page.fill("#user", user.name)
    page.fill("#password", user.password)
    page.click("#signin-submit")
    expect(page).to_have_url(daemon.url + "/")
    # A Dashboard (or the own-session page) answers keys and clicks once all its scripts ran.
    page.wait_for_function("() => { const g = document.getElementById('grid'); "
                           "return !g || g.dataset.ready === 'true'; }")


def new_page(browser: Browser) -> Page:
    """A page that records script errors and console errors (CSP refusals among them) in ``errors``."""
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


