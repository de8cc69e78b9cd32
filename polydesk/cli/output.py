"""What the CLI prints: the daemon's words in the caller's language, tables, listings, results.

--json prints the API's answer as it came; the text output shows what others typed with its
control characters escaped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NoReturn

import typer

from polydesk.cli.client import NOT_PERMITTED, OK, SOME_FAILED, USAGE, connect
from polydesk.core.i18n import N_, _

Json = Annotated[bool, typer.Option("--json", help=_("Machine-readable output."))]

# The words of the text output, in the caller's language; --json keeps the API's own tokens.
# English stays the tokens themselves, so a script reading the text output in C locale is unchanged.
WORDS = {
    "active": N_("active"), "disconnected": N_("disconnected"), "logging-off": N_("logging-off"),
    "started": N_("started"), "resumed": N_("resumed"), "ended": N_("ended"), "blocked": N_("blocked"),
    "unblocked": N_("unblocked"), "shown": N_("shown"), "would-end": N_("would-end"),
    "would-do": N_("would-do"), "unknown-session": N_("unknown-session"),
    "not-permitted": N_("not-permitted"), "failed": N_("failed"), "projected": N_("projected"),
    "projection-stopped": N_("projection-stopped"),
}


def word(token: str) -> str:
    return _(WORDS[token]) if token in WORDS else token


def printable(text: str) -> str:
    """What others typed (a browser's user agent, a message) may hold terminal escapes: show
    control characters as \\xNN instead of letting them drive the terminal."""
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


def show_json(answer: Any) -> None:
    typer.echo(json.dumps(answer, indent=2))


def when(epoch: float | None, form: str = "%Y-%m-%d %H:%M") -> str:
    return time.strftime(form, time.localtime(epoch)) if epoch else "-"


def rows_or_json(path: str, as_json: bool, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """GET a listing: with --json it is printed as it came and nothing is left to show."""
    rows: list[dict[str, Any]] = connect().call("GET", path, params=params)
    if as_json:
        show_json(rows)
        return []
    return rows


def list_lines(path: str, as_json: bool, line: Callable[[dict[str, Any]], str],
               params: dict[str, Any] | None = None) -> None:
    """A listing as one tab-separated line a row (or its JSON)."""
    for row in rows_or_json(path, as_json, params):
        typer.echo(printable(line(row)))


def table(rows: Sequence[Sequence[str]]) -> None:
    """Rows in columns as wide as their widest cell (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def exit_code(results: list[dict[str, Any]]) -> int:
    failures = [r for r in results if not r["ok"]]
    if not failures:
        return OK
    if len(failures) < len(results):
        return SOME_FAILED
    kinds = {r["status"] for r in failures}
    if kinds == {"unknown-session"}:
        return USAGE
    if kinds == {"not-permitted"}:
        return NOT_PERMITTED
    return SOME_FAILED


def report(answer: dict[str, Any], as_json: bool) -> NoReturn:
    """The results of an action on sessions, one line each; the exit code says how it went."""
    results = answer["results"]
    if as_json:
        show_json(answer)
    else:
        for r in results:
            line = f"{r['id'] or '-'}\t{r['user'] or '-'}\t{word(r['status'])}"
            if r["reason"]:
                line += f"\t{r['reason']}"
            typer.echo(printable(line), err=not r["ok"])
        if not results:
            typer.echo(_("no session to act on"))
    raise typer.Exit(exit_code(results))
