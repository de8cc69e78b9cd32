"""Polydesk's translations: extract the messages, update the catalogues, compile, check.

    python scripts/translations.py extract   # every message -> polydesk/locale/polydesk.pot
    python scripts/translations.py update    # merge it into each language's .po (new: empty msgstr)
    python scripts/translations.py compile   # each .po -> .mo (committed: installs need no Babel)
    python scripts/translations.py check     # exit 1 when a catalogue is incomplete or stale

Run it with the venv's Python (Babel is a test requirement). Messages are found in:
Python (``_()``, ``N_()``, ``gettext()``; and the docstrings of the CLI's commands, which are
their help), the Jinja2 templates (``_()``), and the pages' own scripts (``gettext("...")``).
tests/core/test_i18n.py runs ``problems()``: a missing, empty or mistranslated placeholder fails it.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "polydesk"
LOCALE = PACKAGE / "locale"
DOMAIN = "polydesk"
LANGUAGES = ("en", "pt_BR")
TRANSLATED = ("pt_BR",)  # catalogues whose every msgstr must be filled (en is the source)
PLACEHOLDER = re.compile(r"\{[a-z_]*(?::[^}]*)?\}|%\(\w+\)[sd]|%[sd]")
CLI = PACKAGE / "cli"  # the CLI package: its commands docstrings are their --help


def sources() -> Iterator[tuple[Path, str]]:
    """(file, extraction method) for every file that holds messages."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, "python"
    for path in sorted((PACKAGE / "web" / "templates").glob("*.html")):
        yield path, "jinja2"
    for path in sorted((PACKAGE / "web" / "static").glob("*.js")):  # not static/novnc: not ours
        if not path.name.endswith(".min.js"):  # nor htmx
            yield path, "javascript"


def _command_docstrings(path: Path) -> Iterator[tuple[int, str]]:
    """The CLI commands' docstrings (their --help), as cli._translate_help looks them up."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef):
            continue
        commands = [d for d in node.decorator_list if isinstance(d, ast.Call)
                    and isinstance(d.func, ast.Attribute) and d.func.attr == "command"]
        doc = ast.get_docstring(node, clean=False)
        if commands and doc:
            yield node.lineno, inspect.cleandoc(doc)


def extract_catalog() -> Catalog:
    catalog = Catalog(domain=DOMAIN, project="Polydesk", version="1", msgid_bugs_address="",
                      copyright_holder="Polydesk", charset="utf-8")
    # say: service.install's messages (the CLI passes its gettext); the pages' scripts use gettext
    keywords: dict[str, Any] = {**DEFAULT_KEYWORDS, "say": None}
    options = {"jinja2": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}, "javascript": {},
               "python": {}}
    for path, method in sources():
        where = str(path.relative_to(ROOT))
        with open(path, "rb") as fileobj:
            for lineno, message, comments, context in extract(
                    method, fileobj, keywords, comment_tags=("Translators:",), options=options[method]):
                catalog.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
        if path.parent == CLI:
            for lineno, doc in _command_docstrings(path):
                catalog.add(doc, None, [(where, lineno)], auto_comments=["the command's --help"])
    return catalog


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    with open(po_path(language), "rb") as fileobj:
        return read_po(fileobj, locale=language, domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def _write(path: Path, catalog: Catalog, **options: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    write_po(out, catalog, width=100, **options)
    path.write_bytes(out.getvalue())


def extract_to_pot() -> None:
    _write(LOCALE / f"{DOMAIN}.pot", extract_catalog(), omit_header=False)


def update() -> None:
    template = extract_catalog()
    for language in LANGUAGES:
        path = po_path(language)
        catalog = read(language) if path.exists() else Catalog(locale=language, domain=DOMAIN)
        # no fuzzy matching: a guess from a similar message reads as a translation and is wrong
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        catalog.obsolete.clear()  # git keeps history; a stale msgid only misleads
        catalog.project, catalog.version, catalog.fuzzy = "Polydesk", "1", False
        catalog.msgid_bugs_address = catalog.last_translator = ""
        catalog.language_team = f"Polydesk {language}"
        catalog.header_comment = (f"# Polydesk: {language} messages. Source language: en.\n"
                                  "# Update with python scripts/translations.py update; then compile.")
        _write(path, catalog)


def compile_all() -> None:
    for language in LANGUAGES:
        po_path(language).with_suffix(".mo").write_bytes(compiled(read(language)))


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def problems() -> list[str]:
    """Everything wrong with the catalogues, one line each; empty when all is well."""
    wanted = {message.id for message in extract_catalog() if message.id}
    found: list[str] = []
    for language in LANGUAGES:
        path = po_path(language)
        if not path.exists():
            found.append(f"{language}: no catalogue {path.relative_to(ROOT)}")
            continue
        catalog = read(language)
        have = {message.id for message in catalog if message.id}
        found += [f"{language}: missing {m!r}" for m in sorted(wanted - have, key=str)]
        found += [f"{language}: no longer used {m!r}" for m in sorted(have - wanted, key=str)]
        for message in catalog:
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if language in TRANSLATED and (not all(strings) or message.fuzzy):
                found.append(f"{language}: not translated {message.id!r}")
                continue
            for string in strings:
                if string and _placeholders(string) != _placeholders(ids[0]):
                    found.append(f"{language}: placeholders differ in {message.id!r}: {string!r}")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            found.append(f"{language}: {mo.relative_to(ROOT)} is not compiled from the .po "
                         "(python scripts/translations.py compile)")
    return found


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "extract":
        extract_to_pot()
    elif command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        found = problems()
        print("\n".join(found) or "translations: complete")
        return 1 if found else 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
