"""The Dashboard's controls in Chromium, on in-memory sessions (fast): range selection, view
filters, sort, size, disconnect/message/block results, live arrivals, and the own-session page."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, expect

from tests.users import TestUser
from tests.web.webclient import Room, logon, new_page, sign_in, socket_client


def test_selection_view_and_actions(room: Room, make_user: Callable[..., TestUser], browser: Browser) -> None:
    daemon = room.daemon
    ids = {u.name: logon(daemon, u) for u in (room.bia, room.ana)}  # bia first: logon order != names
    page = new_page(browser)
    sign_in(page, daemon, room.admin)
    cards = page.locator("#grid .card")
    expect(cards.locator(".user")).to_have_text(sorted(ids))

    # a session that starts while the page is open appears by itself, one that changes changes in place
    caio = make_user("caio")
    ids[caio.name] = logon(daemon, caio)
    expect(cards).to_have_count(3)
    expect(cards.locator(".user")).to_have_text(sorted(ids))
    with socket_client(daemon) as root:
        root.post("/api/v1/sessions/disconnect", json={"ids": [ids[room.bia.name]]})
        root.post("/api/v1/sessions/logoff", json={"ids": [ids[caio.name]], "force": True})
    expect(cards).to_have_count(2)
    bia_card = page.locator(f"#card-{ids[room.bia.name]}")
    expect(bia_card.locator(".state")).to_have_text("Disconnected")
    expect(bia_card).to_have_class(re.compile(r"\bstate-disconnected\b"))
    del ids[caio.name]

    # view: active only hides the disconnected one; search; sort by logon time; sizes
    page.select_option("#filter", "active")
    expect(bia_card).to_be_hidden()
    page.select_option("#filter", "all")
    expect(bia_card).to_be_visible()
    page.fill("#search", room.ana.name[4:7])  # "ana"
    expect(cards.filter(visible=True)).to_have_count(1)
    page.fill("#search", "")
    page.select_option("#sort", "logon")
    expect(cards.locator(".user")).to_have_text([room.bia.name, room.ana.name])
    page.select_option("#size", "small")
    expect(page.locator("#grid")).to_have_class(re.compile(r"\bsize-small\b"))
    # the fake host has no screens: the picture pushed is the "no picture" card, now at the small size
    expect(page.locator(f"#card-{ids[room.ana.name]} canvas.thumb")).to_have_attribute("width", "160")
    expect(page.locator(f"#card-{ids[room.ana.name]} canvas.thumb")).to_have_attribute("data-version", "0")
    box = page.locator(f"#card-{ids[room.ana.name]}").bounding_box()
    assert box is not None and box["width"] < 200

    # Shift-click selects a range; select all; an empty selection explains itself
    page.locator("#grid .card").nth(0).click()
    page.locator("#grid .card").nth(1).click(modifiers=["Shift"])
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.locator("#grid").click(position={"x": 1200, "y": 300})  # empty space: clears
    expect(page.locator("#selected-count")).to_have_text("0 selected")
    page.click("#toolbar [data-action=disconnect]")
    expect(page.locator("#notice")).to_contain_text("Select one or more sessions first")
    page.click("#select-all")
    expect(page.locator("#selected-count")).to_have_text("2 selected")

    # send a message to both: the results list each session
    page.click("#toolbar [data-action=message]")
    page.fill("#message", "Ten minutes left")
    page.fill("#msg-time", "30")
    page.click("#confirm-ok")
    expect(page.locator("#results-body tr")).to_have_count(2)
    expect(page.locator("#results-body")).to_contain_text("Message shown")
    # cancelling asks nothing of the server
    page.click("#toolbar [data-action=block]")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm")).to_be_hidden()
    assert not any(s["blocked"] for s in daemon.sessions())
    assert page.errors == []  # type: ignore[attr-defined]


def test_own_page_starts_a_session_and_shows_it_live(room: Room, browser: Browser) -> None:
    page = new_page(browser)
    sign_in(page, room.daemon, room.ana)
    # the station page they land on starts their session; in-memory sessions have no screen
    expect(page.locator("#station")).to_have_attribute("data-state", "ended")
    expect(page.locator("#ended-text")).to_have_text(
        "Your session runs, but its screen cannot be shown here.")
    assert [s["user"] for s in room.daemon.sessions()] == [room.ana.name]

    # the overview page: their session as a card; log it off, start it again
    page.goto(room.daemon.url + "/session")
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator("#own-actions")).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    page.click("#own-logoff")
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#own-actions")).to_be_hidden()
    # A log-off signs the station out (issue 14.1: the next child at a lab PC gets the log-on
    # form): the next click lands there, and only a new sign-in starts the session again.
    page.click("#own-logon")
    expect(page).to_have_url(room.daemon.url + "/signin")
    assert [s["user"] for s in room.daemon.sessions()] == []
    sign_in(page, room.daemon, room.ana)
    expect(page.locator("#station")).to_have_attribute("data-state", "ended")  # started, no screen
    page.goto(room.daemon.url + "/session")
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator("#own-actions")).to_be_visible()
    assert [s["user"] for s in room.daemon.sessions()] == [room.ana.name]
    page.click("#sign-out")
    expect(page).to_have_url(room.daemon.url + "/signin")
    assert page.request.get(room.daemon.url + "/api/v1/whoami").status == 401
    # the only errors: the browser and noVNC saying the station's WebSocket was refused (409)
    errors = [e for e in page.errors if not ("WebSocket" in e or "Connection closed" in e)]  # type: ignore[attr-defined]
    # and the click refused once the log-off signed out (401), the ended session asked for (404)
    assert all("401" in e or "404" in e for e in errors), errors
