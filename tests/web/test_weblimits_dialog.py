"""The Dashboard's "Limit web access" dialog, as a teacher uses it: real Chromium, a real daemon
(fake sessions: the kernel's part is tests/test_web_limits.py), in a private network namespace
so that the rules it loads are nobody else's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from polydesk.system import webrules
from tests import weblab
from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import logon, new_page, sign_in

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "web-limits.png"

pytestmark = pytest.mark.skipif(not webrules.nft_available(),
                                reason="nftables is not installed (scripts/install)")


@pytest.fixture(scope="module", autouse=True)
def private_network() -> Iterator[None]:
    """Before the module's Chromium starts: the browser, the daemon and the rules share it."""
    with weblab.private_network():
        yield


def test_a_teacher_limits_a_students_web_from_the_dashboard(
        daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser], browser: Browser) -> None:
    daemon = daemon_factory(backends='["fake"]')
    teacher = make_user("teach", "dashboard")
    ana, bia = make_user("ana"), make_user("bia")
    ids = {user.name: logon(daemon, user) for user in (ana, bia)}
    page = new_page(browser)
    sign_in(page, daemon, teacher)
    page.wait_for_load_state("load")  # the page's deferred scripts have run: its buttons answer
    ana_card, bia_card = page.locator(f"#card-{ids[ana.name]}"), page.locator(f"#card-{ids[bia.name]}")
    expect(ana_card.locator(".web-badge")).to_be_hidden()

    ana_card.click(button="right")
    page.locator("#context-menu [data-web-limit]").click()
    dialog = page.locator("#web-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#web-targets")).to_contain_text(ana.name)
    page.fill("#web-site", "https://www.Contoso.com/path")
    page.keyboard.press("Enter")
    page.fill("#web-site", "wiki")
    page.click("#web-add")
    page.fill("#web-site", "games")
    page.click("#web-add")
    dialog.get_by_role("button", name="Remove games").click()
    expect(page.locator("#web-sites li span")).to_have_text(["www.contoso.com", "wiki"])
    page.fill("#web-list-name", "Exam")
    page.click("#web-list-save")
    expect(page.locator("#web-list")).to_have_value("Exam")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # docs/web-limits.md's picture
    page.click("#web-ok")
    expect(dialog).to_be_hidden()
    expect(page.locator("#results-body")).to_contain_text("Web limited")
    expect(ana_card.locator(".web-badge")).to_be_visible()  # the event updated the card
    expect(bia_card.locator(".web-badge")).to_be_hidden()
    limits = {s["user"]: s["web_limit"] for s in daemon.sessions()}
    assert limits == {ana.name: {"mode": "allow", "sites": ["www.contoso.com", "wiki"]}, bia.name: None}
    assert f"elements = {{ {ana.uid} }}" in webrules.listed()  # the kernel has the rules

    # The saved list, for bia, in block-only mode; then ana's again, prefilled, and removed.
    bia_card.click()
    bia_card.click(button="right")
    page.locator("#context-menu [data-web-limit]").click()
    expect(page.locator("#web-targets")).to_contain_text(bia.name)
    page.select_option("#web-list", "Exam")
    expect(page.locator("#web-sites li span")).to_have_text(["www.contoso.com", "wiki"])
    dialog.get_by_label("Block only these sites").check()
    page.click("#web-ok")
    expect(bia_card.locator(".web-badge")).to_be_visible()
    assert {s["user"]: s["web_limit"] for s in daemon.sessions()}[bia.name] == {
        "mode": "block", "sites": ["www.contoso.com", "wiki"]}
    ana_card.click()
    ana_card.click(button="right")
    page.locator("#context-menu [data-web-limit]").click()
    expect(page.locator("#web-sites li span")).to_have_text(["www.contoso.com", "wiki"])
    expect(dialog.get_by_label("Allow only these sites")).to_be_checked()
    dialog.get_by_label("All sessions (but your own)").check()  # off for everyone
    page.click("#web-off")
    expect(ana_card.locator(".web-badge")).to_be_hidden()
    expect(bia_card.locator(".web-badge")).to_be_hidden()
    assert webrules.listed() == ""
    assert page.errors == []  # type: ignore[attr-defined]
