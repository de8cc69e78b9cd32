"""What a class found in a real trial (issue 14), points 5, 6 and 8, acted out in Chromium on
in-memory sessions, in English and pt-BR, on a 1280x720 laptop and a 768x1024 tablet:

- a log-off can be cancelled from the Dashboard, and Shift+F10, Enter, Enter logs nobody off
  (the menu's first item is harmless, the dialog focuses Cancel, Escape gives the focus back);
- a card being loaded when its session changes shows the change (updates go by version);
- the layout: labelled footers with the state at every size, "fit all", the toolbar on one
  line at 1280 px, a centred empty state without stale hints, Enlarge with two selected,
  Escape closes the enlarged view.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.users import TestUser
from tests.web.test_a11y import assert_accessible
from tests.web.webclient import Room, logon, sign_in, socket_client

LAPTOP = {"width": 1280, "height": 720}
TABLET = {"width": 768, "height": 1024}

WORDS = {
    "en": {"menu-logoff": "Log off 2 selected sessions…", "menu-all": "Log off all users…",
           "cancelled": "Log-off cancelled", "only-one": "Select only one session to enlarge.",
           "logon": re.compile(r"^logged on at \d\d:\d\d$"),
           "select-first": "Select one or more sessions first"},
    "pt-BR": {"menu-logoff": "Fazer logoff de 2 sessões selecionadas…",
              "menu-all": "Fazer logoff de todos os usuários…", "cancelled": "Logoff cancelado",
              "only-one": "Selecione só uma sessão para ampliar.",
              "logon": re.compile(r"^entrou às \d\d:\d\d$"),
              "select-first": "Selecione antes uma ou mais sessões"},
}


@pytest.fixture(params=[("en", LAPTOP), ("pt-BR", LAPTOP), ("en", TABLET), ("pt-BR", TABLET)],
                ids=["en-1280x720", "pt-BR-1280x720", "en-768x1024", "pt-BR-768x1024"])
def setting(request: pytest.FixtureRequest) -> tuple[str, dict[str, int]]:
    lang, viewport = request.param
    return lang, viewport


@pytest.fixture
def page_for(browser: Browser, setting: tuple[str, dict[str, int]]) -> Iterator[Callable[[], Page]]:
    """Pages in the setting's language and size; axe-core may be injected (CSP bypassed here only)."""
    lang, viewport = setting
    pages: list[Page] = []

    def make() -> Page:
        page = browser.new_page(viewport=viewport, locale=lang, bypass_csp=True)  # type: ignore[arg-type]
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors  # type: ignore[attr-defined]
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


def states(room: Room) -> dict[str, str]:
    return {s["id"]: s["state"] for s in room.daemon.sessions()}


def test_cancel_log_off_and_no_log_off_by_enter_enter(
    room: Room, page_for: Callable[[], Page], setting: tuple[str, dict[str, int]]
) -> None:
    words = WORDS[setting[0]]
    ids = sorted(logon(room.daemon, u) for u in (room.ana, room.bia))
    page = page_for()
    sign_in(page, room.daemon, room.teacher)
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(2)

    # the keys that logged a class off: select both, Shift+F10, Enter, Enter
    cards.first.focus()
    page.keyboard.press("Control+a")
    page.keyboard.press("Shift+F10")
    menu = page.locator("#context-menu")
    expect(menu).to_be_visible()
    expect(menu.locator("[data-action=logoff-selected]")).to_have_text(words["menu-logoff"])
    expect(menu.locator("[data-action=logoff-all]")).to_have_text(words["menu-all"])
    expect(menu.locator("[data-action=cancel-logoff]")).to_be_hidden()  # nothing is logging off
    expect(menu.locator("[role=menuitem]").first).to_be_focused()
    expect(menu.locator("[role=menuitem]").first).to_have_attribute("data-station", "view")  # harmless
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm")).to_be_hidden()
    assert set(states(room).values()) == {"active"}

    # the menu's log-off opens a dialog whose Cancel has the focus; Escape gives it back to the card
    cards.first.click()
    cards.nth(1).click(modifiers=["Control"])
    cards.first.click(button="right")
    menu.locator("[data-action=logoff-selected]").click()
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-cancel")).to_be_focused()
    assert_accessible(page)
    page.keyboard.press("Enter")  # Enter on the focused Cancel: nobody is logged off
    expect(page.locator("#confirm")).to_be_hidden()
    expect(cards.first).to_be_focused()
    cards.first.click(button="right")
    menu.locator("[data-action=logoff-selected]").click()
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    expect(cards.first).to_be_focused()
    assert set(states(room).values()) == {"active"}

    # log off with the 30 s grace, then think better of it: Cancel log-off on the cards
    cards.first.click(button="right")
    menu.locator("[data-action=logoff-selected]").click()
    page.click("#confirm-ok")
    expect(page.locator("#grid .card[data-state=logging-off]")).to_have_count(2)
    cards.first.click(button="right")
    expect(menu.locator("[data-action=cancel-logoff]")).to_be_visible()
    assert_accessible(page)  # the menu with all its items
    menu.locator("[data-action=cancel-logoff]").click()
    expect(page.locator("#results-body tr")).to_have_count(2)
    expect(page.locator("#results-body tr").first).to_contain_text(words["cancelled"])
    expect(page.locator("#grid .card[data-state=active]")).to_have_count(2)
    assert states(room) == {ids[0]: "active", ids[1]: "active"}
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_card_being_loaded_takes_the_change_that_came_meanwhile(
    room: Room, make_user: Callable[..., TestUser], page_for: Callable[[], Page],
) -> None:
    """The lost live update: a new session's card is fetched; before its answer comes, the
    session changes (here: blocked). The card, once there, shows the change."""
    logon(room.daemon, room.ana)
    page = page_for()
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived",
                                          lambda f: frames.append(f) if isinstance(f, str) else None))
    sign_in(page, room.daemon, room.teacher)
    expect(page.locator("#grid .card")).to_have_count(1)

    held: list[tuple[Route, Any]] = []  # every card answer, fetched at once, handed over later in order
    page.route("**/ui/cards/*", lambda route: held.append((route, route.fetch())))
    caio = make_user("caio")
    new_id = logon(room.daemon, caio)
    while not held:
        page.wait_for_timeout(50)
    with socket_client(room.daemon) as root:  # changed after its card was rendered
        assert root.post("/api/v1/sessions/block", json={"ids": [new_id]}).json()["succeeded"] == 1
    changed = f'"session_id": "{new_id}"'

    def blocked_event_seen() -> bool:
        return any('"session-changed"' in f and changed in f.replace('":"', '": "') and '"blocked": true'
                   in f.replace('":true', '": true') for f in frames)

    while not blocked_event_seen():
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)  # whatever fetch the event starts is held too
    for route, response in held:  # oldest first: the card as it was before the block
        route.fulfill(response=response)
    page.wait_for_timeout(300)
    page.unroute("**/ui/cards/*")
    card = page.locator(f"#card-{new_id}")
    expect(card).to_have_count(1)
    expect(card.locator(".blocked-badge")).to_be_visible()
    expect(card).to_have_attribute("data-blocked", "true")
    version = next(s["version"] for s in room.daemon.sessions() if s["id"] == new_id)
    expect(card).to_have_attribute("data-version", str(version))
    assert page.errors == []  # type: ignore[attr-defined]


def test_layout(room: Room, make_user: Callable[..., TestUser], page_for: Callable[[], Page],
                setting: tuple[str, dict[str, int]]) -> None:
    lang, viewport = setting
    words = WORDS[lang]
    page = page_for()
    sign_in(page, room.daemon, room.admin)  # an administrator's toolbar has the most in it

    # the toolbar fits one line on a laptop, in both languages
    if viewport == LAPTOP:
        middles = page.eval_on_selector_all("#toolbar > *", """els => els.filter(e => e.offsetParent)
            .map(e => { const r = e.getBoundingClientRect(); return Math.round(r.top + r.height / 2); })""")
        widths = page.eval_on_selector_all("#toolbar > *", "els => els.map(e => [e.id || e.className, "
                                           "Math.round(e.getBoundingClientRect().width)])")
        assert max(middles) - min(middles) < 6, str(widths)

    # nothing to show: said in the middle; a hint goes away once sessions come
    empty = page.locator("#empty")
    expect(empty).to_be_visible()
    box = empty.bounding_box()
    assert box is not None
    assert abs(box["x"] + box["width"] / 2 - viewport["width"] / 2) < 40
    assert viewport["height"] * 0.25 < box["y"] < viewport["height"] * 0.75
    page.click("#toolbar [data-action=disconnect]")
    expect(page.locator("#notice")).to_contain_text(words["select-first"])
    users = [room.ana, room.bia, *(make_user(n) for n in ("caio", "duda", "edu", "fabi"))]
    for user in users:
        logon(room.daemon, user)
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(6)
    expect(empty).to_be_hidden()
    cards.first.click()
    expect(page.locator("#notice")).to_be_hidden()

    # footers: a labelled logon time, the idle time, and the state at every size
    for size in ("large", "medium", "small", "fit"):
        page.select_option("#size", size)
        expect(cards.first.locator(".state")).to_be_visible()
        expect(cards.first.locator(".user")).to_be_visible()
        if size != "small":
            expect(cards.first.locator(".logon")).to_have_text(words["logon"])
            expect(cards.first.locator(".idle")).to_be_visible()

    # fit all: six cards, all on the screen, and bigger than the small ones when there is room
    page.select_option("#size", "fit")
    bottom = page.evaluate("() => Math.max(...[...document.querySelectorAll('#grid .card')]"
                           ".map(c => c.getBoundingClientRect().bottom))")
    assert bottom <= viewport["height"], bottom
    width = cards.first.bounding_box()["width"]  # type: ignore[index]
    assert width > 200, width
    page.reload()  # the choice is kept
    expect(page.locator("#size")).to_have_value("fit")
    assert_accessible(page)

    # Enlarge with two selected says what to do; with one it opens, and Escape closes it
    cards.first.click()
    cards.nth(1).click(modifiers=["Control"])
    page.click("#toolbar [data-station=view]")
    expect(page.locator("#notice")).to_have_text(words["only-one"])
    cards.nth(1).click()
    page.click("#toolbar [data-station=view]")
    expect(page.locator("#enlarge")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(page.locator("#enlarge")).to_be_hidden()
    expect(cards.nth(1)).to_be_focused()
    assert page.errors == [] or all("WebSocket" in e for e in page.errors), page.errors  # type: ignore[attr-defined]
