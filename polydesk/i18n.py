"""Languages: gettext catalogues (polydesk/locale/<lang>/LC_MESSAGES/polydesk.mo) and who speaks which.

Three audiences, three ways to choose:

- what the daemon shows **in sessions** (the log-off notice, the block cover's default text,
  the message window's button) and says when nobody asked otherwise: the *server language*,
  the ``language`` setting (empty: the daemon's environment, LANG and friends) — see
  ``server_gettext``;
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
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "pt_BR")  # the catalogues shipped; the first is the source language
DEFAULT = "en"

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
    return min(choices)[2] if choices else (default or server_language())


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
    """``message`` in the server language, whoever's request it is (text shown in sessions)."""
    return translations(server_language()).gettext(message)


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
