"""``polydesk stations`` and ``polydesk groups``: named stations, saved groups of students.

Each is a group whose bare name lists (``polydesk stations``) and whose subcommands change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import typer

from polydesk.cli.client import connect
from polydesk.cli.output import Json, list_lines, printable, show_json, when
from polydesk.core.i18n import _

stations_app = typer.Typer(help=_("Stations, in use or empty; administrators rename them."),
                           invoke_without_command=True)
groups_app = typer.Typer(help=_("Saved groups of students (shared by the Dashboard's users)."),
                         invoke_without_command=True)


def register(app: typer.Typer) -> None:
    app.add_typer(stations_app, name="stations")
    app.add_typer(groups_app, name="groups")


def _lists(group: typer.Typer, path: str, line: Callable[[dict[str, Any]], str]) -> None:
    """The group's bare name lists (``polydesk stations [--json]``); with a subcommand, that alone runs."""
    @group.callback()
    def listing(ctx: typer.Context, as_json: Json = False) -> None:
        if ctx.invoked_subcommand is None:
            list_lines(path, as_json, line)


def _station(r: dict[str, Any]) -> str:
    at = f"{r['user']} ({r['session_id']})" if r["session_id"] else _("empty")
    return f"{r['id']}\t{r['name']}\t{at}\t{when(r['last_used'])}\t{r['last_user'] or '-'}"


def _group(r: dict[str, Any]) -> str:
    return f"{r['name']}\t{' '.join(r['members'])}"


_lists(stations_app, "/stations", _station)  # id, name, who is at it (or "empty"), last use
_lists(groups_app, "/groups", _group)  # the saved groups and their members


@stations_app.command("rename")
def stations_rename(
    station_id: Annotated[str, typer.Argument(help=_("Station id (from polydesk stations)."))],
    name: Annotated[str, typer.Argument(help=_("Its new name."))],
    as_json: Json = False,
) -> None:
    """Rename a station (administrators)."""
    row = connect().call("PATCH", f"/stations/{station_id}", json={"name": name})
    if as_json:
        show_json(row)
        return
    typer.echo(printable(f"{row['id']}\t{row['name']}"))


@groups_app.command("save")
def groups_save(
    name: Annotated[str, typer.Argument(help=_("Group name."))],
    users: Annotated[list[str], typer.Argument(help=_("Its members' user names."), show_default=False)],
) -> None:
    """Make a group, or replace its members."""
    row = connect().call("PUT", f"/groups/{_path(name)}", json={"members": users})
    typer.echo(printable(_group(row)))


@groups_app.command("delete")
def groups_delete(name: Annotated[str, typer.Argument(help=_("Group name."))]) -> None:
    """Delete a group (its members' sessions are not touched)."""
    connect().call("DELETE", f"/groups/{_path(name)}")


def _path(name: str) -> str:
    """A group's name as one path segment (it may hold spaces, slashes, anything)."""
    return quote(name, safe="")
