"""The web pages in Portuguese (Brazil) when the browser asks for it: Chromium with
locale pt-BR (so Accept-Language: pt-BR), a real daemon, real Xvnc sessions.

"Fully" is checked, not sampled: every text node and every title, placeholder, label and alt
the page shows is compared with the English messages of the catalogue; none may remain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from polydesk.core import i18n
from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import VIEWPORT, logon, sign_in

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard-pt-BR.png"

# Every piece of text the page shows to a person, visible or read aloud.
SHOWN_TEXT_JS = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || el.closest("script, style, [hidden], dialog:not([open])")) continue;
    const text = node.textContent.trim();
    if (text) out.push(text);
  }
  for (const el of document.querySelectorAll("[title], [placeholder], [aria-label], img[alt]")) {
    if (el.closest("[hidden], dialog:not([open])")) continue;
    for (const name of ["title", "placeholder", "aria-label", "alt"]) {
      const value = (el.getAttribute(name) || "").trim();
      if (value) out.push(value);
    }
  }
  out.push(document.title);
  return out;
}"""


def english_left(page: Page) -> list[str]:
    """Texts on the page that are an English message with a different Portuguese translation."""
    catalogue = i18n.translations("pt_BR")
    english = {msgid for msgid in _msgids() if catalogue.gettext(msgid) != msgid}
    shown: list[str] = page.evaluate(SHOWN_TEXT_JS)
    pieces = {part.strip() for text in shown for part in re.split(r" — |\n", text) if part.strip()}
    return sorted(p for p in pieces if p in english or p.rstrip(" ▾") in english)


def _msgids() -> list[str]:
    from babel.messages.mofile import read_mo

    with open(i18n.LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "polydesk.mo", "rb") as mo:
        return [m.id for m in read_mo(mo) if isinstance(m.id, str) and m.id]


def pt_page(browser: Browser) -> Page:
    page = browser.new_page(viewport=VIEWPORT, locale="pt-BR")  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture
def pt_daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """A daemon whose own language is Portuguese too: what sessions show follows it."""
    return daemon_factory('language = "pt_BR"')


def test_signin_page_in_portuguese(fake_daemon: Daemon, browser: Browser,
                                  make_user: Callable[..., TestUser]) -> None:
    page = pt_page(browser)
    page.goto(fake_daemon.url + "/signin")
    expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    expect(page.locator("#signin-submit")).to_have_text("Fazer logon")
    assert english_left(page) == []
    page.fill("#user", "pdt-nobody")
    page.fill("#password", "wrong")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("Nome de usuário ou senha incorretos.")
    assert english_left(page) == []


def test_dashboard_in_portuguese(pt_daemon: Daemon, browser: Browser,
                                 make_user: Callable[..., TestUser]) -> None:
    """A Brazilian school's Dashboard (language = "pt_BR") on real desktops, every word Portuguese:
    toolbar, view bar, thumbnails, menus, the confirmation and the results; the README's picture."""
    daemon = pt_daemon
    admin = make_user("adm", "admin")
    users = [make_user(name) for name in ("ana", "bia", "caio")]
    ids = {user.name: logon(daemon, user) for user in users}
    page = pt_page(browser)
    sign_in(page, daemon, admin)
    expect(page).to_have_title("Painel — Polydesk")
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(3)
    expect(cards.first.locator(".state")).to_have_text("Ativa")
    expect(page.locator("#selected-count")).to_have_text("0 selecionadas")
    for session_id in ids.values():  # the thumbnails have arrived
        thumb = page.locator(f"#card-{session_id} canvas.thumb")
        expect(thumb).to_have_attribute("data-version", re.compile("."))
    page.wait_for_timeout(1500)
    assert english_left(page) == []

    names = sorted(ids)
    page.locator(f"#card-{ids[names[0]]}").click()
    page.locator(f"#card-{ids[names[1]]}").click(modifiers=["Control"])
    expect(page.locator("#selected-count")).to_have_text("2 selecionadas")
    page.click("#logoff-button")
    expect(page.locator("#logoff-dropdown")).to_be_visible()
    assert english_left(page) == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # the README's picture

    page.click("#logoff-dropdown [data-action=logoff-selected]")
    expect(page.locator("#confirm-title")).to_have_text("Fazer logoff dos usuários selecionados")
    expect(page.locator("#confirm-text")).to_have_text("Fazer logoff de 2 sessões:")
    expect(page.locator("#confirm-users li").first).to_have_text(f"{names[0]} (sessão {ids[names[0]]})")
    assert english_left(page) == []
    page.click("#confirm-cancel")

    page.locator(f"#card-{ids[names[2]]}").click(button="right")
    expect(page.locator("#context-menu")).to_be_visible()
    page.click("#context-menu [data-action=block]")
    # empty: each session gets the default in its own language; the placeholder shows it
    expect(page.locator("#message")).to_have_attribute("placeholder", "Estação bloqueada")
    page.click("#confirm-ok")
    expect(page.locator("#results-body")).to_contain_text("Bloqueada")
    expect(page.locator("#results-title")).to_have_text("Bloquear: 1 concluídas, 0 com falha")
    assert english_left(page) == []
    assert page.errors == []  # type: ignore[attr-defined]


def test_station_in_portuguese(pt_daemon: Daemon, browser: Browser,
                               make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    page = pt_page(browser)
    sign_in(page, pt_daemon, ana)
    expect(page.locator("#station")).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(page.locator("#station-status")).to_have_text("Conectada")
    expect(page.locator("#privacy-notice")).to_contain_text("O monitoramento está ativado")
    assert english_left(page) == []
    assert pt_daemon.cli("block", pt_daemon.sessions()[0]["id"]).returncode == 0
    expect(page.locator("#cover-message")).to_have_text("Estação bloqueada")
    expect(page.locator("#station-status")).to_have_text("Bloqueada")
    page.click("#station-logoff")
    expect(page.locator("#logoff-confirm")).to_be_visible()
    assert english_left(page) == []
    page.click("#logoff-cancel")
    assert page.errors == []  # type: ignore[attr-defined]
