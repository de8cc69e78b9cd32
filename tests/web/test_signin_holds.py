"""Locked out with no way back (issue 14.7): an administrator sees what holds a user back at the
log-on page and clears it, from the CLI and from the Dashboard; nobody else may. Real PAM
passwords, a real daemon (in-memory sessions), Chromium in English and Brazilian Portuguese."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, expect

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.test_signin_attacks import attempt
from tests.web.webclient import sign_in

TITLE = {"en-US": "Log-on holds", "pt-BR": "Esperas de logon"}


def guess_until_held(daemon: Daemon, user: TestUser) -> None:
    """A classmate guesses from the same PC until it waits 4 s there; the real password is refused."""
    for wait in (0, 0, 0, 1.1, 2.1):
        time.sleep(wait)
        assert attempt(daemon, user.name, "wrong-guess").status_code == 401
    assert attempt(daemon, user.name, user.password).status_code == 429


@pytest.mark.parametrize("locale", ["en-US", "pt-BR"])
def test_an_administrator_clears_a_hold_from_the_cli_and_the_dashboard(
    fake_daemon: Daemon, make_user: Callable[..., TestUser], browser: Browser, locale: str
) -> None:
    daemon = fake_daemon
    admin, teacher, ana = make_user("adm", "admin"), make_user("tch", "dashboard"), make_user("ana")

    # the CLI: list, refused to others (audited), cleared by the administrator, ana gets in at once
    guess_until_held(daemon, ana)
    holds = daemon.cli_json("signin", "holds", user=admin)
    [hold] = [h for h in holds if h["user"] == ana.name]
    assert hold["kind"] == "account" and hold["client"] == "127.0.0.1" and hold["failures"] == 5
    assert hold["held"] and hold["until"] > time.time()
    for other in (teacher, ana):
        refused = daemon.cli("signin", "unlock", ana.name, user=other)
        assert refused.returncode == 3, refused.stderr
        assert daemon.cli("signin", "holds", user=other).returncode == 3
    cleared = daemon.cli("signin", "unlock", ana.name, "--json", user=admin)
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout) == {"cleared": 1}
    assert attempt(daemon, ana.name, ana.password).status_code == 303
    audit = json.loads(daemon.cli("audit", "--json").stdout)
    unlocks = [r for r in audit if r["action"] == "signin" and r["detail"].get("op") == "unlock"]
    assert {(r["caller"], r["allowed"]) for r in unlocks} == {
        (teacher.name, False), (ana.name, False), (admin.name, True)}, unlocks

    # the Dashboard: the administrator's Log-on holds page lists it and Clear lets ana in at once
    guess_until_held(daemon, ana)
    page = browser.new_page(viewport={"width": 1280, "height": 720}, locale=locale)  # type: ignore[arg-type]
    sign_in(page, daemon, admin)
    page.click("#to-holds")
    expect(page.locator("h1")).to_have_text(TITLE[locale])
    row = page.locator(f'tr.hold[data-user="{ana.name}"]')
    expect(row).to_contain_text("127.0.0.1")
    expect(row).to_contain_text("5")
    row.locator("button.clear-hold").click()
    expect(page.locator("#holds-cleared")).to_contain_text("1")
    expect(page.locator(f'tr.hold[data-user="{ana.name}"]')).to_have_count(0)
    assert attempt(daemon, ana.name, ana.password).status_code == 303

    # a Dashboard user has no such button and the page refuses them
    other = browser.new_page(viewport={"width": 768, "height": 1024}, locale=locale)  # type: ignore[arg-type]
    sign_in(other, daemon, teacher)
    expect(other.locator("#to-holds")).to_have_count(0)
    answer = other.goto(daemon.url + "/signin-holds")
    assert answer is not None and answer.status == 403
    expect(other.locator("#holds-refused")).to_be_visible()
