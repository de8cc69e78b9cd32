"""``polydesk project``: show a session's screen at other sessions' stations, and stop."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from polydesk.cli.actions import act, confirm
from polydesk.cli.client import USAGE, fail
from polydesk.cli.output import Json
from polydesk.core.i18n import _

app = typer.Typer()


def _ids(values: list[str] | None) -> list[str]:
    """--to 3 --to 4, or --to 3,4."""
    return [part for value in values or [] for part in value.split(",") if part]


@app.command()
def project(
    source: Annotated[str | None, typer.Argument(
        help=_("The session to project (default: your own)."), show_default=False)] = None,
    to: Annotated[list[str] | None, typer.Option(
        "--to", help=_("Sessions whose stations show it (repeat, or separate with commas)."))] = None,
    all_: Annotated[bool, typer.Option("--all", help=_("Every session you may act on, except the source."))]
    = False,
    stop: Annotated[bool, typer.Option(
        "--stop", help=_("Stop projecting SOURCE (default: everything you may stop)."))] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation."))] = False,
    what_if: Annotated[bool, typer.Option("--what-if", help=_("Show what would change; change nothing."))]
    = False,
    as_json: Json = False,
) -> None:
    """Project a session's screen, view-only, to the stations of other sessions: polydesk project
    SOURCE --to ID... | --all; polydesk project --stop [SOURCE]."""
    targets = _ids(to)
    if stop:
        if all_:
            fail(USAGE, _("--stop takes no --all: it stops SOURCE's projection, or every one you may stop"))
        act("project/stop", {"source": source, "ids": targets, "what_if": what_if}, as_json)
    if bool(targets) == all_:
        fail(USAGE, _("give the sessions to project to: --to ID... or --all"))
    body: dict[str, Any] = {"source": source, **({"all": True} if all_ else {"ids": targets})}
    if what_if:
        act("project", {**body, "what_if": True}, as_json)
    confirm(_("Project to"), body, "/sessions/project", yes,
            _("Their stations will show this screen until you stop."))
    act("project", body, as_json)
