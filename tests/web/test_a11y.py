"""Accessibility of the Dashboard and the log-on page: axe-core in Debian's Chromium finds no
serious or critical violation, and the Dashboard works from the keyboard alone (arrow keys
between thumbnails, Space to select, Shift+F10 or the context-menu key for the menu) with
labels a screen reader can read and a visible focus.

axe-core is vendored for the tests only (tests/web/vendor/, from `npm pack axe-core`) and
injected with Playwright; the daemon never serves it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.web.webclient import VIEWPORT, Room, logon, sign_in

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")


def new_page(browser: Browser, **options: Any) -> Page:
    """A page where axe-core may be injected: the pages' Content-Security-Policy forbids any
    script but their own, so this browser context alone bypasses it (the CSP is tested elsewhere)."""
    page = browser.new_page(viewport=VIEWPORT, bypass_csp=True, **options)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Every axe-core rule (WCAG 2.x A/AA and best practices) run on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    script = "async () => await axe.run(document, {resultTypes: ['violations']})"
    result: dict[str, Any] = page.evaluate(script)
    return list(result["violations"])


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    return [f"{v['impact']}: {v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['html'][:160]})"
            for v in violations if v["impact"] in BLOCKING]


def assert_accessible(page: Page) -> None:
    found = blocking(axe_violations(page))
    assert not found, "\n".join(found)


def test_signin_page_has_no_serious_violation(room: Room, browser: Browser) -> None:
    page = new_page(browser)
    page.goto(room.daemon.url + "/signin")
    assert_accessible(page)
    page.fill("#user", room.ana.name)
    page.fill("#password", "wrong password")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_be_visible()
    assert_accessible(page)  # with the error shown


def test_dashboard_has_no_serious_violation(room: Room, browser: Browser) -> None:
    for user in (room.ana, room.bia):
        logon(room.daemon, user)
    page = new_page(browser)
    sign_in(page, room.daemon, room.admin)
    expect(page.locator(".card")).to_have_count(2)
    assert_accessible(page)
    page.locator(".card").first.click()
    page.locator(".card").first.click(button="right")
    expect(page.locator("#context-menu")).to_be_visible()
    assert_accessible(page)  # with a selection and the menu open
    page.keyboard.press("Escape")
    page.click("#logoff-button")
    page.click("#logoff-dropdown [data-action=logoff-selected]")
    expect(page.locator("#confirm")).to_be_visible()
    assert_accessible(page)  # with the confirmation dialog
    assert page.errors == []  # type: ignore[attr-defined]


def test_dashboard_works_from_the_keyboard(room: Room, browser: Browser) -> None:
    """Tab reaches the thumbnails; arrows move, Space selects, Shift+arrow extends, Shift+F10 opens
    the menu on the focused thumbnail, arrows move in it, Escape closes it and comes back, and an
    action is carried out without a mouse."""
    users = [room.ana, room.bia]
    for user in users:
        logon(room.daemon, user)
    page = new_page(browser)
    sign_in(page, room.daemon, room.admin)
    cards = page.locator(".card")
    expect(cards).to_have_count(2)
    for user, card in zip(sorted(users, key=lambda u: u.name), cards.all(), strict=True):
        expect(card).to_have_attribute("role", "option")
        expect(card).to_have_accessible_name(re.compile(rf"^{user.name} Active "))  # from its text
    # exactly one thumbnail is in the Tab order
    assert page.eval_on_selector_all(".card", "cs => cs.map(c => c.tabIndex)") == [0, -1]

    cards.first.focus()
    page.keyboard.press("ArrowRight")
    expect(cards.nth(1)).to_be_focused()
    assert page.eval_on_selector_all(".card", "cs => cs.map(c => c.tabIndex)") == [-1, 0]
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "dashed"  # the focus is visible
    page.keyboard.press("Space")
    expect(cards.nth(1)).to_have_attribute("aria-selected", "true")
    expect(page.locator("#selected-count")).to_have_text("1 selected")
    page.keyboard.press("Shift+ArrowLeft")
    expect(cards.first).to_be_focused()
    expect(page.locator(".card[aria-selected=true]")).to_have_count(2)

    page.keyboard.press("Shift+F10")
    menu = page.locator("#context-menu")
    expect(menu).to_be_visible()
    expect(menu.locator("[role=menuitem]").first).to_be_focused()
    expect(menu.locator("[data-station=view]")).to_be_focused()  # harmless first (issue 14.5)
    page.keyboard.press("ArrowDown")
    expect(menu.locator("[data-station=control]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(cards.first).to_be_focused()

    page.keyboard.press("ContextMenu")
    expect(menu).to_be_visible()
    for _ in range(3):
        page.keyboard.press("ArrowDown")  # Take control, Send message, Block
    page.keyboard.press("Enter")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#message")).to_be_focused()
    page.keyboard.press("Enter")  # submits with the default text
    expect(page.locator("#results-body")).to_contain_text("Blocked")
    expect(cards.first).to_have_accessible_name(re.compile(r"^Blocked pdt-ana-\w+ Active"))
    assert page.errors == []  # type: ignore[attr-defined]
