"""A station whose session someone else ended or disconnected goes back to the log-on form (issue 14.1),
and a station comes back by itself after the daemon restarts (issue 14.3).

Real headless Chromium, a real daemon, real Xvnc sessions and passwords, in English at 1280x720
and in Brazilian Portuguese at 768x1024 (a tablet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon, wait_for
from tests.users import TestUser
from tests.web.webclient import sign_in

CONNECT_MS = 30_000
LOOKS = [pytest.param("en-US", {"width": 1280, "height": 720}, id="en-1280x720"),
         pytest.param("pt-BR", {"width": 768, "height": 1024}, id="pt-BR-768x1024")]
FAREWELL = {
    ("en-US", "session-ended"): "Your session has ended. Log on again to start a new one.",
    ("pt-BR", "session-ended"): "Sua sessão foi encerrada. Faça logon novamente para começar uma nova.",
    ("en-US", "session-disconnected"): "Your session was disconnected. Log on again to resume it.",
    ("pt-BR", "session-disconnected"): "Sua sessão foi desconectada. Faça logon novamente para retomá-la.",
}
RECONNECTING = {"en-US": "Reconnecting…", "pt-BR": "Reconectando…"}
RAW_ERRORS = ("Failed to fetch", "NetworkError", "Load failed", "TypeError")

# Every text the station's bar and its "ended" panel ever show, kept in the page as they change.
WATCH_TEXTS = """() => {
  window.shownTexts = [];
  const keep = () => {
    for (const id of ["station-status", "ended-title", "ended-text"]) {
      const el = document.getElementById(id);
      if (el && el.textContent) window.shownTexts.push(el.textContent);
    }
    const ended = document.getElementById("station-ended");
    if (ended && !ended.hidden) window.shownTexts.push("[ended panel shown]");
  };
  new MutationObserver(keep).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""


def browser_page(browser: Browser, locale: str, viewport: dict[str, int]) -> Page:
    page = browser.new_page(viewport=viewport, locale=locale)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def connected(page: Page) -> None:
    expect(page.locator("#station")).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)


def sessions_of(daemon: Daemon, user: TestUser) -> list[dict[str, Any]]:
    return [s for s in daemon.sessions() if s["user"] == user.name]


def at_signin_form(page: Page, daemon: Daemon, then: str | None, locale: str) -> None:
    expect(page.locator("#signin-form")).to_be_visible(timeout=CONNECT_MS)
    assert page.url.startswith(daemon.url + "/signin"), page.url
    if then is not None:
        expect(page.locator("#farewell")).to_have_text(FAREWELL[(locale, then)])
    expect(page.locator("#station-resume")).to_have_count(0)


def try_everything(page: Page, daemon: Daemon, locale: str) -> None:
    """What a child at a shared PC does next: click about, reload, go back, and back again."""
    page.mouse.click(400, 300)
    page.keyboard.press("Enter")
    page.reload()
    at_signin_form(page, daemon, None, locale)
    page.go_back()
    page.wait_for_timeout(1500)  # a page from the history would start its script now
    at_signin_form(page, daemon, None, locale)
    page.go_back()
    page.wait_for_timeout(1500)
    assert "/station" not in page.url or page.locator("#signin-form").count() == 1
    page.goto(daemon.url + "/")
    at_signin_form(page, daemon, None, locale)
    # the old cookie is worthless: the API says not signed in
    assert page.request.get(daemon.url + "/api/v1/sessions").status == 401


def ended_by_the_teacher(page: Page, daemon: Daemon, ana: TestUser, locale: str, command: tuple[str, ...],
                         then: str) -> dict[str, Any]:
    """Ana signs in at her station; the teacher runs ``polydesk COMMAND[0] <her session> COMMAND[1:]``;
    her station shows the log-on form saying ``then``, and nothing she tries there gets her in."""
    sign_in(page, daemon, ana)
    connected(page)
    [session] = sessions_of(daemon, ana)
    answer = daemon.cli(command[0], session["id"], *command[1:])
    assert answer.returncode == 0, answer.stderr
    at_signin_form(page, daemon, then, locale)
    try_everything(page, daemon, locale)
    time.sleep(2)
    return session


@pytest.mark.parametrize(("locale", "viewport"), LOOKS)
def test_log_off_or_disconnect_by_the_teacher_signs_the_station_out(
    daemon: Daemon, make_user: Callable[..., TestUser], browser: Browser, locale: str,
    viewport: dict[str, int],
) -> None:
    ana = make_user("ana")
    page = browser_page(browser, locale, viewport)

    # the "log off, then Resume" attack: the teacher logs ana off; nothing at her station starts a session
    ended_by_the_teacher(page, daemon, ana, locale, ("logoff", "--grace", "0", "--yes"), "session-ended")
    assert sessions_of(daemon, ana) == [], "a session started with no password"

    # the same after the teacher's Disconnect (through the API): the session keeps running, unused
    session = ended_by_the_teacher(page, daemon, ana, locale, ("disconnect", "--json"),
                                   "session-disconnected")
    [still] = sessions_of(daemon, ana)
    assert still["id"] == session["id"] and still["state"] == "disconnected", still

    # ending the sign-ins is audited, as the caller who disconnected the session
    audit = json.loads(daemon.cli("audit", "--json").stdout)
    ended = [r for r in audit if r["action"] == "signin" and r["detail"].get("op") == "end"]
    assert {r["caller"] for r in ended} >= {"root", "polydesk"}, ended
    assert all(r["detail"]["user"] == ana.name and r["detail"]["signins"] == 1 for r in ended), ended

    # her own Disconnect (the CLI, as her) is her choice: her station stays signed in and may resume
    sign_in(page, daemon, ana)
    connected(page)
    assert daemon.cli("disconnect", user=ana).returncode == 0
    expect(page.locator("#station")).to_have_attribute("data-state", "ended")
    expect(page.locator("#station-resume")).to_be_visible()
    assert page.request.get(daemon.url + "/api/v1/sessions").status == 200
    page.click("#station-resume")
    connected(page)
    assert page.errors == [], page.errors  # type: ignore[attr-defined]


@pytest.mark.parametrize(("locale", "viewport"), LOOKS)
def test_the_station_comes_back_by_itself_after_the_daemon_restarts(
    daemon: Daemon, make_user: Callable[..., TestUser], browser: Browser, locale: str,
    viewport: dict[str, int],
) -> None:
    ana = make_user("ana")
    page = browser_page(browser, locale, viewport)
    sign_in(page, daemon, ana)
    connected(page)
    [session] = sessions_of(daemon, ana)
    page.evaluate(WATCH_TEXTS)

    daemon.stop()
    try:
        expect(page.locator("#station-status")).to_have_text(RECONNECTING[locale], timeout=10_000)
        time.sleep(3)  # a few attempts fail while the daemon is away
    finally:
        daemon.start()  # even when the page fails: the teardown logs the sessions off through it
    started = time.monotonic()
    connected(page)  # by itself: nobody clicks
    assert time.monotonic() - started < 25, "the station took too long to come back"
    [again] = sessions_of(daemon, ana)
    assert again["id"] == session["id"] and again["state"] == "active"

    shown: list[str] = page.evaluate("window.shownTexts")
    assert RECONNECTING[locale] in shown
    assert "[ended panel shown]" not in shown, shown
    assert not [t for t in shown if any(raw in t for raw in RAW_ERRORS)], shown
    wait_for(lambda: page.locator("#station-status").inner_text() != RECONNECTING[locale],
             what="status", timeout=30)
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
