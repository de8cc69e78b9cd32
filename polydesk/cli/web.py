"""``polydesk web``: limit the web access of sessions, as MultiPoint's Dashboard does.

    polydesk web allow ID... | --all SITE...   only these sites (and their subdomains)
    polydesk web block ID... | --all SITE...   every site but these
    polydesk web off ID... | --all             no limit
    polydesk web show ID                       a session's limit
    polydesk web lists | save NAME MODE SITE... | delete NAME    the saved lists

Session ids come first, then the sites: an argument is an id while it is one of a session
(digits, or HOST/digits in a fleet). ``--list NAME`` takes the sites (and, for ``allow`` and
``block``, must agree on the mode) of a saved list.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import typer

from polydesk.cli.actions import All, act, selection
from polydesk.cli.client import USAGE, connect, fail
from polydesk.cli.output import Json, list_lines, printable, show_json
from polydesk.core.i18n import _
from polydesk.core.model import InvalidRequest
from polydesk.core.websites import site_entry

web_app = typer.Typer(help=_("Limit the web access of sessions: allow only, or block only, some sites."),
                      no_args_is_help=True)
_ID = re.compile(r"^([^/\s]+/)?\d+$")

Args = Annotated[list[str] | None, typer.Argument(help=_("Session ids (or --all), then the sites."),
                                                  show_default=False)]
FromList = Annotated[str | None, typer.Option("--list", help=_("Use the sites of this saved list."))]


def register(app: typer.Typer) -> None:
    app.add_typer(web_app, name="web")


def _split(args: list[str] | None, all_: bool) -> tuple[list[str], list[str]]:
    args = list(args or [])
    if all_:
        return [], args
    ids = []
    while args and _ID.match(args[0]):
        ids.append(args.pop(0))
    return ids, args


def _limit(mode: str, args: list[str] | None, all_: bool, saved: str | None, as_json: bool) -> None:
    ids, sites = _split(args, all_)
    if saved is not None:
        lists = {row["name"]: row for row in connect().call("GET", "/web-lists")}
        if saved not in lists:
            fail(USAGE, _("no saved list of sites named {name!r}").format(name=saved))
        if lists[saved]["mode"] != mode:
            fail(USAGE, _("the list {name!r} is a list to {mode}").format(
                name=saved, mode=lists[saved]["mode"]))
        sites = [*lists[saved]["sites"], *sites]
    if not sites and mode == "allow":
        fail(USAGE, _("give the sites to allow after the session ids (or --list NAME)"))
    sites = _entries(sites)
    act("web-limit", {**selection(ids, all_, own_if_empty=False), "mode": mode, "sites": sites}, as_json)


@web_app.command("allow")
def allow(args: Args = None, all_: All = False, saved: FromList = None, as_json: Json = False) -> None:
    """Allow only these sites: everything else is refused.

    contoso.com: it and its subdomains; contoso: any domain with that word."""
    _limit("allow", args, all_, saved, as_json)


@web_app.command("block")
def block(args: Args = None, all_: All = False, saved: FromList = None, as_json: Json = False) -> None:
    """Block only these sites: everything else is open."""
    _limit("block", args, all_, saved, as_json)


@web_app.command("off")
def off(ids: Annotated[list[str] | None, typer.Argument(help=_("Session ids."), show_default=False)] = None,
        all_: All = False, as_json: Json = False) -> None:
    """End the web limit of sessions."""
    act("web-limit/off", selection(ids, all_, own_if_empty=False), as_json)


@web_app.command("show")
def show(session_id: Annotated[str, typer.Argument(help=_("Session id."))], as_json: Json = False) -> None:
    """Show a session's web limit."""
    session = connect().call("GET", f"/sessions/{quote(session_id, safe='')}")
    limit = session.get("web_limit")
    if as_json:
        show_json(limit)
        return
    if not limit:
        typer.echo(_("{id}\t{user}\tno limit").format(id=session["id"], user=session["user"]))
        return
    mode = _("allow only") if limit["mode"] == "allow" else _("block only")
    typer.echo(printable(f"{session['id']}\t{session['user']}\t{mode}\t{' '.join(limit['sites'])}"))


def _entries(sites: list[str]) -> list[str]:
    """The sites in the one form the API takes (``https://WWW.Contoso.com/x``: ``www.contoso.com``)."""
    try:
        return [site_entry(site) for site in sites]
    except InvalidRequest as exc:
        fail(USAGE, str(exc))


def _line(row: dict[str, Any]) -> str:
    return f"{row['name']}\t{row['mode']}\t{' '.join(row['sites'])}"


@web_app.command("lists")
def lists(as_json: Json = False) -> None:
    """The saved lists of sites (shared by the Dashboard's users)."""
    list_lines("/web-lists", as_json, _line)


@web_app.command("save")
def save(
    name: Annotated[str, typer.Argument(help=_("List name, such as Exam."))],
    mode: Annotated[str, typer.Argument(help=_("allow or block."))],
    sites: Annotated[list[str], typer.Argument(help=_("Its sites."), show_default=False)],
) -> None:
    """Save a list of sites, or replace one."""
    typer.echo(printable(_line(connect().call("PUT", f"/web-lists/{quote(name, safe='')}",
                                              json={"mode": mode, "sites": _entries(sites)}))))


@web_app.command("delete")
def delete(name: Annotated[str, typer.Argument(help=_("List name."))]) -> None:
    """Delete a saved list of sites (the limits made with it stay)."""
    connect().call("DELETE", f"/web-lists/{quote(name, safe='')}")
