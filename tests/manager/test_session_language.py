"""One language per session: what Polydesk shows inside a session speaks that session's user's
language (their station's Accept-Language at log-on, kept with the session; else the language
they chose for their desktop, AccountsService; else the server's), whoever acts on it.

The fast cases run the manager over the FakeBackend; the real one is two Xvnc sessions on an
English server, one started by a Portuguese browser and one by an English browser, read
through their helper windows (titles and the text handed to them) across a daemon restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core import i18n
from polydesk.core.model import Target
from polydesk.manager.manager import Manager
from polydesk.store.store import Store
from tests.core.test_i18n import _helper_titles
from tests.harness import Daemon, wait_for
from tests.manager.helpers import ADMIN, ANA, TEACHER
from tests.users import TestUser
from tests.web.webclient import signin

PORTUGUESE_BROWSER = "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7"  # Chromium with locale pt-BR
ENGLISH_BROWSER = "en-US,en;q=0.9"
IDLE_PT = "Esta sessão não é usada há algum tempo."


# ---------------------------------------------------------------- choosing the language


@pytest.mark.parametrize(("header", "language"), [
    (PORTUGUESE_BROWSER, "pt_BR"), (ENGLISH_BROWSER, "en"), ("de-DE,fr;q=0.9", None), ("", None),
    ("pt-BR;q=0", None),
])
def test_asked_language(header: str, language: str | None) -> None:
    """A header that asks for nothing we have leaves the choice to the user's locale, then the server."""
    assert i18n.asked_language(header) == language


def test_user_language_from_accountsservice(tmp_path: Path) -> None:
    """GNOME's Settings and LightDM keep a user's language in AccountsService's file."""
    (tmp_path / "ana").write_text("[User]\nSession=xfce\nLanguage=pt_BR.UTF-8\nXSession=xfce\n")
    (tmp_path / "bia").write_text("[User]\nLanguage=\n")
    (tmp_path / "caio").write_text("[User]\nLanguage=de_DE.UTF-8:pt_BR.UTF-8\n")
    (tmp_path / "dora").write_text("[InputSource0]\nLanguage=pt_BR.UTF-8\n[User]\nSystemAccount=false\n")
    assert i18n.user_language("ana", tmp_path) == "pt_BR"
    assert i18n.user_language("bia", tmp_path) is None
    assert i18n.user_language("caio", tmp_path) == "pt_BR"  # the first of the list we have
    assert i18n.user_language("dora", tmp_path) is None  # only [User] speaks for the user
    assert i18n.user_language("nobody", tmp_path) is None
    assert i18n.user_language("../ana", tmp_path) is None  # never a path out of the folder


def test_session_language_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "ACCOUNTS_SERVICE", tmp_path)
    (tmp_path / "ana").write_text("[User]\nLanguage=pt_BR.UTF-8\n")
    assert i18n.session_language("en", "ana") == "en"  # the station's browser first
    assert i18n.session_language(None, "ana") == "pt_BR"  # then the user's own desktop language
    assert i18n.session_language(None, "bia") == i18n.server_language()  # then the server's


@pytest.fixture
def manager(manager: Manager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Manager:
    """The manager of conftest.py, where nobody chose a desktop language."""
    monkeypatch.setattr(i18n, "ACCOUNTS_SERVICE", tmp_path / "accounts")
    return manager


async def test_the_stations_language_is_the_sessions(manager: Manager, tmp_path: Path) -> None:
    """Ana's browser asked for Portuguese: the Dashboard user's block, in an English server, covers
    her screen in Portuguese; Bia's session, started without one, stays in the server's English."""
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    ana, resumed = await manager.logon(ANA, "ana", language="pt_BR")
    assert not resumed and ana.language == "pt_BR"
    bia, _ = await manager.logon(ADMIN, "bia")
    await manager.block(TEACHER, Target(all=True))
    assert host.desktops[ana.id].blocked_with == "Estação bloqueada"
    assert host.desktops[bia.id].blocked_with == "Station blocked"
    assert manager.in_session(ana, "Message") == "Mensagem"
    assert manager.store.audit(limit=1)[0].detail["message"] == "Station blocked"  # the setting, once

    # An administrator logging her on from an English CLI or browser does not change her language.
    again, resumed = await manager.logon(ADMIN, "ana", language="en")
    assert resumed and again.language == "pt_BR"
    # Her own station, resuming in English, does.
    again, _ = await manager.logon(ANA, "ana", language="en")
    assert again.language == "en"
    # Kept with the session: the next daemon reads it back.
    reopened = Store(tmp_path / "polydesk.db")
    try:
        stored = reopened.session(ana.id)
        assert stored is not None and stored.language == "en"
    finally:
        reopened.close()


# ---------------------------------------------------------------- real sessions (Xvnc)


def _helper_texts(session: dict[str, object]) -> list[str]:
    """The text each helper window of ``session``'s display was given (its argv)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info["cmdline"] or []
        if "polydesk.system.x11.windows" in argv and str(session["display"]) in argv:
            for flag in ("--text", "--message"):
                if flag in argv:
                    found.append(argv[argv.index(flag) + 1])
    return found


def _station_logon(daemon: Daemon, user: TestUser, accept_language: str) -> dict[str, object]:
    """What the station page does after the web sign-in: POST /api/v1/sessions from the browser."""
    with signin(daemon, user) as client:
        answer = client.post("/api/v1/sessions", json={"user": user.name},
                             headers={"Accept-Language": accept_language})
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["session"])


def test_a_session_speaks_its_stations_language(daemon_factory: Callable[..., Daemon],
                                                make_user: Callable[..., TestUser]) -> None:
    """An English server (language = "en"); Ana's station asked for pt-BR, Bia's for en-US.
    Inside Ana's desktop: the idle warning, the message window's title, the block cover and the
    log-off notice are Portuguese, also after a daemon restart; inside Bia's, English."""
    daemon = daemon_factory('language = "en"\nidle_disconnect_after = 15')
    ana, bia = make_user("ana"), make_user("bia")
    pt = _station_logon(daemon, ana, PORTUGUESE_BROWSER)
    en = _station_logon(daemon, bia, ENGLISH_BROWSER)

    # The idle warning (a message window the daemon opens 3 s before the idle disconnect).
    wait_for(lambda: any(t.startswith(IDLE_PT) for t in _helper_texts(pt)), timeout=30,
             show=lambda: _helper_texts(pt))
    wait_for(lambda: "Mensagem" in _helper_titles(daemon, pt), show=lambda: _helper_titles(daemon, pt))
    wait_for(lambda: any(t.startswith("This session has not been used") for t in _helper_texts(en)))
    wait_for(lambda: "Message" in _helper_titles(daemon, en), show=lambda: _helper_titles(daemon, en))

    # A message from root's English CLI: the window is titled in each session's language.
    assert daemon.cli("msg", str(pt["id"]), str(en["id"]), "Hello / Olá").returncode == 0
    wait_for(lambda: "Hello / Olá" in _helper_texts(pt) and "Hello / Olá" in _helper_texts(en))

    def blocked_with() -> dict[str, object]:
        assert daemon.cli("block", str(pt["id"]), str(en["id"])).returncode == 0
        shown = {s["id"]: s["block_message"] for s in daemon.sessions()}
        assert daemon.cli("unblock", "--all").returncode == 0
        return shown

    assert blocked_with() == {pt["id"]: "Estação bloqueada", en["id"]: "Station blocked"}

    daemon.stop()  # a service restart: the sessions run on, and keep their language
    daemon.start()
    assert blocked_with() == {pt["id"]: "Estação bloqueada", en["id"]: "Station blocked"}
    assert daemon.cli("block", str(pt["id"])).returncode == 0
    wait_for(lambda: "Polydesk: bloqueada" in _helper_titles(daemon, pt))
    assert daemon.cli("unblock", str(pt["id"])).returncode == 0

    assert daemon.cli("logoff", str(pt["id"]), str(en["id"]), "--grace", "30", "--no-wait",
                      "--yes").returncode == 0
    wait_for(lambda: "O logoff da sua sessão será feito em 30 segundos. Salve o seu trabalho agora."
             in _helper_texts(pt), show=lambda: _helper_texts(pt))
    wait_for(lambda: "You will be logged off in 30 seconds. Save your work now." in _helper_texts(en))
    wait_for(lambda: "Polydesk: logoff" in _helper_titles(daemon, pt))
    wait_for(lambda: "Polydesk: log-off" in _helper_titles(daemon, en))
    assert daemon.cli("logoff", "--all", "--force", "--yes").returncode == 0


# ---------------------------------------------------------------- the pt-BR words the trial fixed


def test_portuguese_words_the_trial_fixed() -> None:
    """Session states agree with "sessão" (feminine); "Logoff efetuado"; no "Está sendo feito";
    the web page's sign-out is not a word a child takes for the desktop's log-off; lock-outs
    start with a capital."""
    pt = i18n.translations("pt_BR")
    assert pt.gettext("Connected") == "Conectada"
    assert pt.gettext("Disconnected") == "Desconectada"
    assert pt.gettext("Active") == "Ativa"
    assert pt.gettext("Logged off") == "Logoff efetuado"
    assert pt.gettext("Your session is logging off.") == "Fazendo logoff da sua sessão…"
    assert pt.gettext("Log off") == "Fazer logoff"
    assert pt.gettext("Sign out") == "Sair da página"
    for message in ("Disconnected: the session was idle for too long",
                    "Disconnected: this session was opened elsewhere",
                    "Disconnected: the session was disconnected", "Disconnected: the session has ended",
                    "Disconnected: the session's screen closed",
                    "Disconnected: you signed out or your role changed"):
        assert pt.gettext(message).startswith("Desconectada: "), message
    catalogue = (i18n.LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "polydesk.po").read_text()
    assert "Está sendo feito" not in catalogue and "Logoff feito" not in catalogue
    for what in ("for this account", "for this address", "on this server"):
        for n in (1, 5):
            text = pt.ngettext(f"Too many failed log-on attempts {what}. Try again in %(n)d minute.",
                               f"Too many failed log-on attempts {what}. Try again in %(n)d minutes.", n)
            assert text.startswith("Muitas tentativas de logon sem sucesso"), text


def test_the_cli_speaks_one_language(daemon_factory: Callable[..., Daemon],
                                     make_user: Callable[..., TestUser]) -> None:
    """A Portuguese CLI user reads Portuguese states and results, not "active" among Portuguese
    headers; in C locale the words are the API's tokens, as scripts expect."""
    daemon = daemon_factory(backends='["fake"]')
    ana = make_user("ana")
    assert daemon.cli("logon", ana.name).returncode == 0
    listed = daemon.cli("sessions")
    assert "active" in listed.stdout and "STATE" in listed.stdout
    env_pt = {"LANG": "pt_BR.UTF-8"}
    original = daemon.env
    daemon.env = lambda: {**original(), **env_pt}  # type: ignore[method-assign]
    listed = daemon.cli("sessions")
    assert "ESTADO" in listed.stdout and "ativa" in listed.stdout and "active" not in listed.stdout, \
        listed.stdout
    blocked = daemon.cli("block", "--all")
    assert "\tbloqueada" in blocked.stdout, blocked.stdout


def test_root_cli_has_no_language_of_its_own(daemon_factory: Callable[..., Daemon],
                                              make_user: Callable[..., TestUser]) -> None:
    """A session started from the CLI (no browser) is in the server's language."""
    daemon = daemon_factory('language = "pt_BR"', backends='["fake"]')
    ana = make_user("ana")
    result = daemon.cli("logon", ana.name, "--json")
    assert result.returncode == 0, result.stderr
    session = json.loads(result.stdout)["session"]
    assert daemon.cli("block", session["id"]).returncode == 0
    assert daemon.sessions()[0]["block_message"] == "Estação bloqueada"
