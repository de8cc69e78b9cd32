"""``polydesk stations`` and ``polydesk groups``: named stations, saved groups of students."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from polydesk.core.i18n import _

Json = Annotated[bool, typer.Option("--json", help=_("Machine-readable output."))]

stations_app = typer.Typer(help=_("Stations, in use or empty; administrators rename them."),
                           invoke_without_command=True)
groups_app = typer.Typer(help=_("Saved groups of students (shared by the Dashboard's users)."),
                         invoke_without_command=True)


def register(app: typer.Typer) -> None:
    app.add_typer(stations_app, name="stations")
    app.add_typer(groups_app, name="groups")


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


@stations_app.callback()
def stations_list(ctx: typer.Context, as_json: Json = False) -> None:
    """List the stations: id, name, who is at it (or "empty"), last use."""
    if ctx.invoked_subcommand is not None:
        return
    from polydesk.cli.main import client, printable

    rows = client().call("GET", "/stations")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        at = f"{r['user']} ({r['session_id']})" if r["session_id"] else _("empty")
        last = f"{_when(r['last_used'])}\t{r['last_user'] or '-'}"
        typer.echo(printable(f"{r['id']}\t{r['name']}\t{at}\t{last}"))


@stations_app.command("rename")
def stations_rename(
    station_id: Annotated[str, typer.Argument(help=_("Station id (from polydesk stations)."))],
    name: Annotated[str, typer.Argument(help=_("Its new name."))],
    as_json: Json = False,
) -> None:
    """Rename a station (administrators)."""
    from polydesk.cli.main import client, printable

    row = client().call("PATCH", f"/stations/{station_id}", json={"name": name})
    typer.echo(json.dumps(row, indent=2) if as_json else printable(f"{row['id']}\t{row['name']}"))


@groups_app.callback()
def groups_list(ctx: typer.Context, as_json: Json = False) -> None:
    """List the saved groups and their members."""
    if ctx.invoked_subcommand is not None:
        return
    from polydesk.cli.main import client, printable

    rows = client().call("GET", "/groups")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(printable(f"{r['name']}\t{' '.join(r['members'])}"))


@groups_app.command("save")
def groups_save(
    name: Annotated[str, typer.Argument(help=_("Group name."))],
    users: Annotated[list[str], typer.Argument(help=_("Its members' user names."), show_default=False)],
) -> None:
    """Make a group, or replace its members."""
    from polydesk.cli.main import client, printable

    row = client().call("PUT", f"/groups/{_path(name)}", json={"members": users})
    typer.echo(printable(f"{row['name']}\t{' '.join(row['members'])}"))


@groups_app.command("delete")
def groups_delete(name: Annotated[str, typer.Argument(help=_("Group name."))]) -> None:
    """Delete a group (its members' sessions are not touched)."""
    from polydesk.cli.main import client

    client().call("DELETE", f"/groups/{_path(name)}")


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
