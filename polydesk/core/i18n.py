"""Languages: gettext catalogues (polydesk/locale/<lang>/LC_MESSAGES/polydesk.mo) and who speaks which.

Three audiences, three ways to choose:

- what the daemon shows **in a session** (the log-off notice, the block cover's default text,
  the message window's title and button, the idle warning): the *session's language*, that of
  its user — the language their station's browser asked for when it started or resumed the
  session (stored with the session), else the language they chose for their desktop
  (AccountsService), else the *server language*: the ``language`` setting (empty: the daemon's
  environment, LANG and friends) — see ``session_language`` and ``session_gettext``;
- **web pages**: the browser's Accept-Language, negotiated against the catalogues, else the
  server language; set for the time a page is rendered with ``using`` — see ``gettext``;
- the **CLI**: its user's environment, as any gettext program (the server language of a
  process that never set one).

Strings in the code are marked with ``_`` (translated where they are used) or ``N_``
(marked only: tables of labels, translated later with ``gettext``); Babel extracts both,
plus ``_()`` in the templates and ``gettext()`` in the pages' JavaScript (scripts/translations).
Only the standard library is needed at run time; Babel is a development and test tool.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext as _gettext
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

DOMAIN = "polydesk"
LOCALE_DIR = Path(__file__).parent.parent / "locale"
LANGUAGES = ("en", "pt_BR")  # the catalogues shipped; the first is the source language
DEFAULT = "en"

# Where GNOME's Settings, LightDM and the other AccountsService clients Debian ships keep the
# language a user chose for their desktop (``Language=pt_BR.UTF-8``): root's, so safe to read.
ACCOUNTS_SERVICE = Path("/var/lib/AccountsService/users")
_MAX_ACCOUNT_FILE = 64 << 10

_server: str | None = None  # set once by the composition root (app.run); None: from the environment
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("polydesk_language", default=None)


def N_(message: str) -> str:
    """Mark ``message`` for extraction only; it is translated where it is shown."""
    return message


def normalize(tag: str) -> str | None:
    """The catalogue for a language tag or locale name ("pt-BR", "pt_BR.UTF-8", "pt", "en-GB"),
    or None when there is none. Portuguese without a region gets Brazil's: the only one we have."""
    base = re.split(r"[.@]", tag.strip())[0].replace("-", "_")
    if not base or base in ("C", "POSIX", "*"):
        return None
    language, _, region = base.partition("_")
    language = language.lower()
    for candidate in (f"{language}_{region.upper()}" if region else None, language):
        if candidate in LANGUAGES:
            return candidate
    return {"pt": "pt_BR"}.get(language)


def environment_language(env: Mapping[str, str] | None = None) -> str:
    """The language gettext would pick from LANGUAGE, LC_ALL, LC_MESSAGES and LANG."""
    env = os.environ if env is None else env
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(variable, "")
        if not value:
            continue
        for tag in value.split(":") if variable == "LANGUAGE" else [value]:
            found = normalize(tag)
            if found:
                return found
        if variable != "LANGUAGE":
            return DEFAULT  # the first locale variable set decides, as in setlocale(3)
    return DEFAULT


def check_language(setting: str) -> str:
    """The catalogue the ``language`` setting names; ValueError for one we do not have."""
    if not setting:
        return environment_language()
    found = normalize(setting)
    if found is None:
        raise ValueError(f"no {setting!r} translation; the languages are: {', '.join(LANGUAGES)}")
    return found


def set_server_language(setting: str) -> str:
    """Called once by the daemon with its ``language`` setting; returns the language chosen."""
    global _server
    _server = check_language(setting)
    return _server


def server_language() -> str:
    return _server or environment_language()


def negotiate(accept_language: str, default: str | None = None) -> str:
    """The best catalogue for an Accept-Language header (RFC 9110 q-values), else ``default``."""
    return asked_language(accept_language) or default or server_language()


def asked_language(accept_language: str) -> str | None:
    """The catalogue a browser's Accept-Language asks for, or None when it asks for none we have
    (then the user's own locale or the server's decides, not a guess from the header)."""
    choices = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            with contextlib.suppress(ValueError):
                quality = float(match.group(1))
        found = normalize(tag)
        if found and quality > 0:
            choices.append((-quality, position, found))
    return min(choices)[2] if choices else None


@functools.cache
def translations(language: str) -> _gettext.NullTranslations:
    return _gettext.translation(DOMAIN, LOCALE_DIR, [language], fallback=True)


def current_language() -> str:
    return _current.get() or server_language()


@contextlib.contextmanager
def using(language: str) -> Iterator[None]:
    """Translate with ``language`` inside the block (a web page being rendered)."""
    token = _current.set(language)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    """``message`` in the current language: the page's, else the server's."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


_ = gettext


def server_gettext(message: str) -> str:
    """``message`` in the server language, whoever's request it is (what no session's user reads)."""
    return translations(server_language()).gettext(message)


def user_language(user: str, folder: Path | None = None) -> str | None:
    """The language ``user`` chose for their desktop: AccountsService's ``Language=`` (GNOME's
    Settings and LightDM write it), if it names a catalogue we have. Not ``~/.pam_environment``
    (Debian's pam_env does not read it) nor files in the user's home (theirs to point anywhere)."""
    if not user or "/" in user or user.startswith("."):
        return None
    try:
        with open((folder or ACCOUNTS_SERVICE) / user, "rb") as file:
            text = file.read(_MAX_ACCOUNT_FILE).decode("utf-8", "replace")
    except OSError:
        return None
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[User]" and line.startswith("Language="):
            # Language= may list several, colon-separated, as LANGUAGE does: the first we have wins.
            for tag in line.partition("=")[2].split(":"):
                found = normalize(tag)
                if found:
                    return found
            return None
    return None


def session_language(asked: str | None, user: str) -> str:
    """The language of what is shown in a session of ``user``: ``asked`` (what their station's
    browser asked for, stored with the session), else their desktop's, else the server's."""
    return (normalize(asked) if asked else None) or user_language(user) or server_language()


def session_gettext(language: str, message: str) -> str:
    """``message`` in a session's language (``session_language``): text shown in that session."""
    return translations(language).gettext(message)


def bcp47(language: str) -> str:
    """The HTML lang attribute for a catalogue name: pt_BR -> pt-BR."""
    return language.replace("_", "-")


# ---------------------------------------------------------------- the pages' JavaScript

_JS_CALL = re.compile(r"""\bgettext\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]""")


@functools.cache
def script_messages(static: Path) -> tuple[str, ...]:
    """Every ``gettext("...")`` message in the pages' scripts (the same calls Babel extracts)."""
    found: dict[str, None] = {}
    for script in sorted(static.glob("*.js")):
        if script.name.endswith(".min.js"):  # a library's (htmx), not ours
            continue
        for match in _JS_CALL.finditer(script.read_text(encoding="utf-8")):
            found[json.loads(f'"{match.group(1)}"')] = None
    return tuple(found)


def script_strings(static: Path, language: str) -> dict[str, str]:
    """Translations of the scripts' messages, for the page to hand to its JavaScript."""
    catalogue = translations(language)
    return {m: t for m in script_messages(static) if (t := catalogue.gettext(m)) != m}
