"""Languages: complete catalogues, how a language is chosen, and Portuguese where people read it:
in sessions (real Xvnc: the message window, the block cover, the log-off notice) and in the CLI.
The web pages in pt-BR are in tests/web/test_i18n_web.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psutil
import pytest
from Xlib import X
from Xlib.error import XError

from polydesk.core import i18n
from polydesk.core.screen import Screen
from polydesk.system.x11 import client as x11
from tests.harness import Daemon, wait_for
from tests.users import TestUser

ROOT = Path(__file__).parents[2]


def _translations_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_catalogues_are_complete_and_compiled() -> None:
    """Extracts every message (Python, templates, the pages' scripts, the CLI's help) with Babel
    and compares with each catalogue: a message missing from one, a pt_BR message left
    untranslated, a placeholder lost in translation or a stale .mo fails here."""
    problems = _translations_script().problems()
    hint = "\n(python scripts/translations.py update; translate; python scripts/translations.py compile)"
    assert problems == [], "\n".join(problems) + hint


def test_a_missing_message_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _translations_script()
    package = tmp_path / "polydesk"
    (package / "web" / "templates").mkdir(parents=True)
    (package / "web" / "static").mkdir()
    (package / "new.py").write_text('from polydesk.core.i18n import _\nprint(_("A brand new message"))\n')
    monkeypatch.setattr(script, "PACKAGE", package)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert "pt_BR: missing 'A brand new message'" in script.problems()


@pytest.mark.parametrize(("tag", "language"), [
    ("pt-BR", "pt_BR"), ("pt_BR.UTF-8", "pt_BR"), ("pt", "pt_BR"), ("PT-br", "pt_BR"),
    ("en", "en"), ("en-GB", "en"), ("en_US.UTF-8", "en"), ("C.UTF-8", None), ("de-DE", None), ("", None),
])
def test_normalize(tag: str, language: str | None) -> None:
    assert i18n.normalize(tag) == language


@pytest.mark.parametrize(("header", "language"), [
    ("pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7", "pt_BR"),
    ("en-US,en;q=0.9,pt-BR;q=0.8", "en"),
    ("de-DE,de;q=0.9,pt;q=0.5", "pt_BR"),
    ("de-DE,fr;q=0.9", "en"),  # nothing we have: the server's language (here the default)
    ("en;q=0.1,pt-BR;q=0.2", "pt_BR"),
    ("pt-BR;q=0", "en"),
    ("*", "en"),
    ("", "en"),
])
def test_negotiate(header: str, language: str) -> None:
    assert i18n.negotiate(header, default="en") == language


def test_environment_language() -> None:
    assert i18n.environment_language({"LANG": "pt_BR.UTF-8"}) == "pt_BR"
    assert i18n.environment_language({"LANG": "pt_BR.UTF-8", "LC_ALL": "C"}) == "en"
    assert i18n.environment_language({"LANGUAGE": "de:pt_BR", "LANG": "en_US.UTF-8"}) == "pt_BR"
    assert i18n.environment_language({}) == "en"


def test_server_and_page_languages_are_separate() -> None:
    """A teacher's Portuguese browser must not change what an English server shows in sessions."""
    assert i18n.check_language("pt-BR") == "pt_BR"
    with pytest.raises(ValueError, match="pt_BR"):
        i18n.check_language("klingon")
    with i18n.using("pt_BR"):
        assert i18n.gettext("Station blocked") == "Estação bloqueada"
        assert i18n.server_gettext("Station blocked") == "Station blocked"  # this process: LANG=C
    assert i18n.gettext("Station blocked") == "Station blocked"


def test_the_cli_speaks_its_users_language(tmp_path: Path) -> None:
    def run(*args: str, lang: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "LANG": lang, "PYTHONPATH": str(ROOT),
               "POLYDESK_RUNTIME_DIR": str(tmp_path)}
        return subprocess.run([sys.executable, "-m", "polydesk", *args], capture_output=True, text=True,
                              env=env)

    assert "Listar as sessões" in run("--help", lang="pt_BR.UTF-8").stdout
    assert "List sessions" in run("--help", lang="C.UTF-8").stdout
    unreachable = run("sessions", lang="pt_BR.UTF-8")
    assert unreachable.returncode == 4
    assert unreachable.stderr.startswith("polydesk: não foi possível contatar o serviço polydesk em ")
    usage = run("block", lang="pt_BR.UTF-8")
    assert (usage.returncode, usage.stderr) == (2, "polydesk: informe um ou mais ids de sessão, ou --all\n")


def test_the_daemon_refuses_a_language_it_does_not_have(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(backends='["fake"]', extra_config='language = "tlh"', start=False)
    with pytest.raises(RuntimeError, match="setting 'language': no 'tlh' translation"):
        daemon.start()


def _helper_titles(daemon: Daemon, session: dict[str, object]) -> set[str]:
    xauthority = daemon.runtime_dir / "sessions" / str(session["id"]) / "Xauthority"
    with x11.connection(Screen(str(session["display"]), str(xauthority))) as conn:
        helper = conn.intern_atom(x11.HELPER_PROPERTY)
        name = conn.intern_atom("_NET_WM_NAME")
        titles, pending = set(), [conn.screen().root]
        while pending:  # a message window is managed: under the window manager's frame
            window = pending.pop()
            try:
                pending += window.query_tree().children
                if window.get_property(helper, X.AnyPropertyType, 0, 1) is not None:
                    titles.add(window.get_full_property(name, X.AnyPropertyType).value.decode())
            except (XError, AttributeError):
                continue
        return titles


def test_sessions_are_told_in_the_server_language(daemon_factory: Callable[..., Daemon],
                                                  make_user: Callable[..., TestUser]) -> None:
    """language = "pt_BR": the default block text, the message window and the log-off notice
    in a real Xvnc session are Portuguese, whatever the CLI caller's own language."""
    daemon = daemon_factory(extra_config='language = "pt_BR"')
    ana = make_user("ana")
    result = daemon.cli("logon", ana.name, "--json")
    assert result.returncode == 0, result.stderr
    session = json.loads(result.stdout)["session"]

    assert daemon.cli("msg", session["id"], "Olá, turma").returncode == 0
    wait_for(lambda: "Mensagem" in _helper_titles(daemon, session),
             show=lambda: _helper_titles(daemon, session))

    assert daemon.cli("block", session["id"]).returncode == 0
    [listed] = daemon.sessions()
    assert listed["block_message"] == "Estação bloqueada"
    wait_for(lambda: "Polydesk: bloqueada" in _helper_titles(daemon, session))
    assert daemon.cli("unblock", session["id"]).returncode == 0

    assert daemon.cli("logoff", session["id"], "--grace", "30", "--no-wait", "--yes").returncode == 0

    def notice_shown() -> bool:
        return any("O logoff da sua sessão será feito em 30 segundos. Salve o seu trabalho agora."
                   in p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"])

    wait_for(notice_shown, what="a Portuguese log-off notice in the session")
    wait_for(lambda: "Polydesk: logoff" in _helper_titles(daemon, session))
    assert daemon.cli("logoff", session["id"], "--force", "--yes").returncode == 0
