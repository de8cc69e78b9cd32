"""The Dashboard when the daemon cannot be reached (a service restart, a network cut): the
teacher reads a sentence in the page's language, never the browser's own "Failed to fetch"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, expect

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import logon, sign_in

UNREACHABLE = {
    "pt-BR": "Não foi possível contatar o serviço Polydesk. Verifique a conexão de rede e tente novamente.",
    "en-US": "The Polydesk service cannot be reached. Check the network connection and try again.",
}
BROWSER_WORDS = ("Failed to fetch", "NetworkError", "Load failed")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 720}, {"width": 768, "height": 1024}],
                         ids=["laptop", "tablet"])
@pytest.mark.parametrize("locale", ["pt-BR", "en-US"])
def test_an_unreachable_daemon_is_said_in_the_pages_language(
        fake_daemon: Daemon, browser: Browser, make_user: Callable[..., TestUser],
        locale: str, viewport: dict[str, int]) -> None:
    admin, ana = make_user("adm", "admin"), make_user("ana")
    session_id = logon(fake_daemon, ana)
    page = browser.new_page(viewport=viewport, locale=locale)  # type: ignore[arg-type]
    sign_in(page, fake_daemon, admin)
    card = page.locator(f"#card-{session_id}")
    card.click()
    fake_daemon.stop()  # the teacher does not know: they block the selected screen

    page.locator("#toolbar [data-action=block]").click()
    page.click("#confirm-ok")
    expect(page.locator("#results-body")).to_contain_text(UNREACHABLE[locale])
    shown = page.locator("body").inner_text()
    assert not [words for words in BROWSER_WORDS if words in shown], shown
    page.close()
