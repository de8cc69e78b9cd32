"""Applications in sessions: ``polydesk launch``, ``open``, ``apps`` and ``close``, as
MultiPoint's Launch and Close and its ``Get-WmsApp`` / ``Close-WmsApp``.

What to launch is given as separate arguments after ``--`` (``polydesk launch 3 -- gedit
notes.txt``): the daemon runs that vector as it is, never through a shell.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from polydesk.cli.actions import All, act, selection
from polydesk.cli.client import USAGE, connect, fail
from polydesk.cli.output import WORDS, Json, printable, rows_or_json, table, when
from polydesk.core.i18n import N_, _

app = typer.Typer()

WORDS.update({"launched": N_("launched"), "closed": N_("closed"), "terminated": N_("terminated"),
              "killed": N_("killed"), "nothing-to-close": N_("nothing-to-close")})


def _split(args: list[str], all_: bool, what: str) -> tuple[list[str], list[str]]:
    """Session ids, then what to launch: ``ID... -- PROGRAM ARGS`` (or ``--all -- ...``)."""
    if "--" in args:
        at = args.index("--")
        ids, rest = args[:at], args[at + 1:]
    elif all_:
        ids, rest = [], args
    else:
        fail(USAGE, _("give the session ids, then -- and {what}").format(what=what))
    if not rest:
        fail(USAGE, _("nothing to launch: give {what} after --").format(what=what))
    return ids, rest


@app.command(context_settings={"allow_interspersed_args": False})
def launch(
    args: Annotated[list[str], typer.Argument(help=_("Session ids (or --all), --, then the program and its "
                                                     "arguments."), show_default=False)],
    all_: All = False,
    installed: Annotated[bool, typer.Option(
        "--app", help=_("The program is an installed application's .desktop name "
                        "(polydesk apps --installed)."))]
    = False,
    as_json: Json = False,
) -> None:
    """Start a program in sessions, as each session's user: polydesk launch ID... -- PROGRAM [ARGS...]."""
    ids, rest = _split(args, all_, _("the program"))
    body: dict[str, Any] = selection(ids, all_, own_if_empty=False)
    if installed:
        if len(rest) != 1:
            fail(USAGE, _("--app takes one application name"))
        body["app"] = rest[0]
    else:
        body["argv"] = rest
    act("launch", body, as_json)


@app.command(name="open")
def open_(
    args: Annotated[list[str], typer.Argument(help=_("Session ids (or --all), then the address."),
                                              show_default=False)],
    all_: All = False,
    as_json: Json = False,
) -> None:
    """Open a web address, document or folder in sessions with their default application."""
    *ids, url = args
    act("launch", {**selection(ids, all_, own_if_empty=False), "url": url}, as_json)


@app.command()
def apps(
    session_id: Annotated[str | None, typer.Argument(help=_("Session id."), show_default=False)] = None,
    installed: Annotated[bool, typer.Option("--installed", help=_(
        "The applications installed on this host instead."))] = False,
    as_json: Json = False,
) -> None:
    """List the applications running in a session: title, name, pid, start time."""
    if installed:
        rows = rows_or_json("/apps", as_json)
        if rows:
            table([(_("APP"), _("NAME"))] + [(r["id"], printable(r["name"])) for r in rows])
        return
    if session_id is None:
        fail(USAGE, _("give a session id (or --installed)"))
    rows = rows_or_json(f"/sessions/{session_id}/apps", as_json)
    if as_json:
        return
    if not rows:
        typer.echo(_("no application is running there"))
        return
    table([(_("PID"), _("STARTED"), _("NAME"), _("TITLE"))] + [
        (_pid(r), when(r["started_at"], "%H:%M:%S"), printable(r["name"] or "-"),
         printable(r["title"] or "-"))
        for r in rows])


def _pid(row: dict[str, Any]) -> str:
    if row["pid"] is None:
        return "?"
    # A pid only the window claims (any client can forge _NET_WM_PID): said so.
    return str(row["pid"]) + ("" if row["pid_source"] == "server" else "*")


@app.command()
def close(
    args: Annotated[list[str] | None, typer.Argument(
        help=_("ID APP_PID, or with --name: session ids (or --all)."), show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help=_(
        "Close every application of this name instead of one pid."))] = None,
    all_: All = False,
    as_json: Json = False,
) -> None:
    """Close an application, politely first: polydesk close ID APP_PID, or --name NAME (ID... | --all)."""
    args = args or []
    if name is not None:
        act("close-app", {**selection(args, all_, own_if_empty=False), "name": name}, as_json)
    if all_ or len(args) != 2 or not args[1].isdigit():
        fail(USAGE, _("give a session id and an application's pid (or --name NAME)"))
    session_id, pid = args[0], int(args[1])
    # The start time as listed now: the daemon closes that process, never one that reused its pid.
    listed = connect().call("GET", f"/sessions/{session_id}/apps")
    start = next((r["start"] for r in listed if r["pid"] == pid), None)
    if start is None:
        fail(USAGE, _("no application with pid {pid} in session {id}").format(pid=pid, id=session_id))
    act("close-app", {"ids": [session_id], "pid": pid, "start": start}, as_json)
