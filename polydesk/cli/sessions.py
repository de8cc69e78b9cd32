"""``polydesk sessions`` and ``polydesk hosts``: what runs where, like ``query session``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from polydesk.cli.client import connect
from polydesk.cli.output import Json, printable, rows_or_json, show_json, table, when, word
from polydesk.core.i18n import _

app = typer.Typer()
PAGE = 500  # sessions asked for at once: a fleet of 50,000 comes in a hundred short answers


def fleet_rows(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every session of the fleet that matches ``params``, page after page (by cursor)."""
    api = connect()
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.call("GET", "/fleet/sessions", params={**params, "limit": PAGE,
                                                         **({"cursor": cursor} if cursor else {})})
        rows += page["sessions"]
        cursor = page["next"]
        if not cursor:
            return rows


@app.command()
def sessions(
    as_json: Json = False,
    fleet: Annotated[bool, typer.Option("--fleet", help=_("Every host of the fleet (ids HOST/ID)."))] = False,
    host: Annotated[str | None, typer.Option("--host", help=_("Only this host of the fleet."))] = None,
    search: Annotated[str | None, typer.Option("--search", help=_(
        "Only sessions whose user, id, host or client contains this text (fleet)."))] = None,
    state: Annotated[str | None, typer.Option("--state", help=_(
        "Only sessions in this state: active, disconnected, logging-off or blocked (fleet)."))] = None,
) -> None:
    """List sessions, like `query session`. `>` marks your own."""
    on_fleet = fleet or host is not None or search is not None or state is not None
    if on_fleet:
        filters = {"host": host, "q": search, "state": state}
        rows = fleet_rows({k: v for k, v in filters.items() if v is not None})
        if as_json:
            show_json(rows)
            return
    else:
        rows = rows_or_json("/sessions", as_json)
        if as_json:
            return
    header = ("", _("ID"), _("USER"), _("STATE"), _("BLOCKED"), _("DISPLAY"), _("LOGON"), _("IDLE"),
              _("CLIENT"))
    lines = [header] + [
        (">" if r["own"] else "", str(r["id"]), r["user"], word(r["state"]),
         _("yes") if r["blocked"] else _("no"), r["display"] or "-", when(r["logon_time"]),
         _duration(r["idle_s"]), printable(r["client"] or "-"))
        + ((r["fleet_host"] + ("" if r["host_online"] else " " + _("(offline)")),) if on_fleet else ())
        for r in rows
    ]
    if on_fleet:
        lines[0] += (_("HOST"),)
    table(lines)


@app.command()
def hosts(as_json: Json = False) -> None:
    """Fleet mode: the hosts of the fleet, online or offline. `*` marks this one."""
    rows = rows_or_json("/fleet/hosts", as_json)
    if as_json:
        return
    table([("", _("HOST"), _("STATE"), _("SESSIONS"), _("LAST SEEN"), _("ADDRESS"))] + [
        ("*" if r["local"] else "", r["name"], _("online") if r["online"] else _("offline"),
         str(r["sessions"]),
         _("now") if r["local"] else _("{seconds:.0f} s ago").format(seconds=r["last_seen_s"]),
         r["listen"] or "-")
        for r in rows
    ])


def _duration(seconds: float | None) -> str:
    """Idle time as ``query session`` shows it: ``.`` under a minute, then minutes, then H+MM."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return "."
    minutes = int(seconds // 60)
    return f"{minutes // 60}+{minutes % 60:02d}" if minutes >= 60 else str(minutes)
