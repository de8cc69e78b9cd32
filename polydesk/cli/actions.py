"""Acting on sessions: ``polydesk logon``, ``logoff``, ``disconnect``, ``block``, ``unblock``, ``msg``.

Each names its targets the same way (``selection``): session ids (``HOST/ID`` on another host of
the fleet), or ``--all`` with ``--fleet``/``--host``; with no id, some act on your own session.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, NoReturn

import typer

from polydesk.cli.client import OK, USAGE, connect, fail
from polydesk.cli.output import Json, report, show_json
from polydesk.core.i18n import _

app = typer.Typer()

Ids = Annotated[list[str] | None, typer.Argument(help=_("Session ids."), show_default=False)]
All = Annotated[bool, typer.Option("--all", help=_("Every session you may act on, except your own."))]
Fleet = Annotated[bool, typer.Option("--fleet", help=_("Fleet mode: with --all, every host of the fleet."))]
OnHost = Annotated[str | None, typer.Option("--host", help=_("Fleet mode: with --all, only this host."))]


def selection(ids: list[str] | None, all_: bool, own_if_empty: bool, fleet: bool = False,
              host: str | None = None) -> dict[str, Any]:
    """The request's targets, as the API takes them; bad combinations are a usage error."""
    if ids and all_:
        fail(USAGE, _("give session ids or --all, not both"))
    if (fleet or host) and not all_:
        fail(USAGE, _("--fleet and --host go with --all (a session id names its host: HOST/ID)"))
    if fleet and host:
        fail(USAGE, _("give --fleet (every host) or --host (one host), not both"))
    if all_:
        return {"all": True, **({"fleet": True} if fleet else {}), **({"host": host} if host else {})}
    if ids:
        return {"ids": ids}
    if own_if_empty:
        return {"own": True}
    fail(USAGE, _("give one or more session ids, or --all"))


def confirm(what: str, body: dict[str, Any], path: str, yes: bool, warning: str) -> None:
    """Ask before acting on more than one session, as MultiPoint's Dashboard does."""
    if yes:
        return
    preview = connect().call("POST", path, json={**body, "what_if": True})["results"]
    targets = [r for r in preview if r["ok"]]
    if len(targets) <= 1 and not body.get("all"):
        return
    if not targets:
        return
    names = ", ".join(f"{r['user']} ({r['id']})" for r in targets)
    if not sys.stdin.isatty():
        fail(USAGE, _("{what} {n} sessions ({names}) needs --yes when not run interactively").format(
            what=what, n=len(targets), names=names))
    if not typer.confirm(_("{what} {n} sessions: {names}? {warning}").format(
            what=what, n=len(targets), names=names, warning=warning), default=False):
        raise typer.Exit(OK)


def act(action: str, body: dict[str, Any], as_json: bool) -> NoReturn:
    """POST /sessions/ACTION; its results are the output and the exit code."""
    report(connect().call("POST", f"/sessions/{action}", json=body), as_json)


@app.command()
def logon(user: Annotated[str, typer.Argument(help=_("Account to log on."))], as_json: Json = False) -> None:
    """Start USER's session, or resume the running one."""
    answer = connect().call("POST", "/sessions", json={"user": user})
    if as_json:
        show_json(answer)
        return
    s = answer["session"]
    verb = _("resumed") if answer["resumed"] else _("started")
    typer.echo(f"{s['id']}\t{s['user']}\t{verb}\t{s['display']}")


@app.command()
def logoff(
    ids: Ids = None,
    all_: All = False,
    fleet: Fleet = False,
    host: OnHost = None,
    grace: Annotated[int | None, typer.Option(help=_("Seconds of warning before the end."))] = None,
    force: Annotated[bool, typer.Option("--force", help=_("No warning, no polite close."))] = False,
    message: Annotated[str | None, typer.Option(help=_("Warning text shown in the session."))] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation."))] = False,
    what_if: Annotated[bool, typer.Option("--what-if", help=_("Show what would end; end nothing."))] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help=_("Return once log-off has begun."))] = False,
    cancel: Annotated[bool, typer.Option(
        "--cancel", help=_("Stop log-offs still in their grace period; the sessions go on."))] = False,
    as_json: Json = False,
) -> None:
    """Log off sessions. No id: your own session. --all: everyone but you."""
    if cancel:
        if fleet or host:
            fail(USAGE, _("--cancel acts on this host's sessions only"))
        act("logoff/cancel", selection(ids, all_, own_if_empty=True), as_json)
    body: dict[str, Any] = {**selection(ids, all_, own_if_empty=True, fleet=fleet, host=host), "force": force,
                            "message": message, "wait": not no_wait}
    if grace is not None:
        body["grace"] = grace
    if what_if:
        act("logoff", {**body, "what_if": True}, as_json)
    confirm(_("Log off"), body, "/sessions/logoff", yes, _("Unsaved work in them may be lost."))
    answer = connect().call("POST", "/sessions/logoff", json=body)
    if not no_wait:
        wait_until_ended(answer["results"], deadline=time.monotonic() + (grace or 30) + 120)
    report(answer, as_json)


@app.command()
def disconnect(ids: Ids = None, all_: All = False, as_json: Json = False, fleet: Fleet = False,
               host: OnHost = None) -> None:
    """Drop the viewers of sessions; they keep running. No id: your own session."""
    act("disconnect", selection(ids, all_, True, fleet, host), as_json)


def wait_until_ended(results: list[dict[str, Any]], deadline: float) -> None:
    """The daemon answers after a while with the sessions still logging off: follow them."""
    pending = [r for r in results if r["status"] == "logging-off"]
    api = connect()
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        for result in list(pending):
            host, slash, local_id = str(result["id"]).partition("/")
            if not api.exists(f"/fleet/sessions/{host}/{local_id}" if slash else f"/sessions/{result['id']}"):
                result.update(status="ended")
                pending.remove(result)


@app.command()
def block(
    ids: Ids = None,
    all_: All = False,
    message: Annotated[str | None, typer.Option(
        help=_('Text on the cover (default: "Station blocked", in each session\'s language).'))] = None,
    as_json: Json = False,
    fleet: Fleet = False,
    host: OnHost = None,
) -> None:
    """Cover the screens of sessions with a message and ignore their input."""
    act("block", {**selection(ids, all_, own_if_empty=False, fleet=fleet, host=host), "message": message},
        as_json)


@app.command()
def unblock(ids: Ids = None, all_: All = False, as_json: Json = False, fleet: Fleet = False,
            host: OnHost = None) -> None:
    """Lift the block of sessions."""
    act("unblock", selection(ids, all_, False, fleet, host), as_json)


@app.command()
def msg(
    args: Annotated[list[str], typer.Argument(help=_("Session ids (or --all), then the message text."))],
    all_: All = False,
    time_: Annotated[int | None, typer.Option("--time", help=_("Close the message after S seconds."))]
    = None,
    as_json: Json = False,
    fleet: Fleet = False,
    host: OnHost = None,
) -> None:
    """Show a message on sessions: polydesk msg ID... TEXT, or polydesk msg --all TEXT."""
    *ids, text = args
    act("message", {**selection(ids, all_, own_if_empty=False, fleet=fleet, host=host), "text": text,
                    "time": time_}, as_json)
