"""The ``polydesk`` command: parses arguments and calls the daemon over HTTP.

A thin client: it never imports the manager. Locally it talks to the Unix
socket, where the daemon knows the caller from the socket's peer credentials;
``--server URL --token T`` reaches a daemon elsewhere.

Exit codes: 0 all done; 1 some target failed; 2 bad usage or unknown id only;
3 not permitted; 4 daemon unreachable.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from typing import Annotated, Any, NoReturn

import httpx
import typer

from polydesk.config.settings import DEFAULT_RUNTIME_DIR
from polydesk.core.i18n import N_, _

OK, SOME_FAILED, USAGE, NOT_PERMITTED, UNREACHABLE = 0, 1, 2, 3, 4

app = typer.Typer(
    help=_("Polydesk: shared desktop sessions. List, log on, log off, disconnect, block and message."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Client:
    def __init__(self, server: str | None, token: str | None, socket: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if server:
            self.where = server
            self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=600)
        else:
            path = socket or os.path.join(os.environ.get("POLYDESK_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR,
                                          "api.sock")
            self.where = path
            transport = httpx.HTTPTransport(uds=path)
            self.http = httpx.Client(transport=transport, base_url="http://polydesk", headers=headers,
                                     timeout=600)

    def exists(self, path: str) -> bool:
        try:
            return self.http.get(f"/api/v1{path}").status_code != 404
        except httpx.HTTPError:
            return True  # unknown: keep waiting

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api/v1{path}", **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError, PermissionError) as exc:
            fail(UNREACHABLE, _("cannot reach the polydesk daemon at {where}: {error}").format(
                where=self.where, error=exc))
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = error["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            code = {400: USAGE, 401: NOT_PERMITTED, 403: NOT_PERMITTED, 404: USAGE}.get(
                response.status_code, SOME_FAILED)
            fail(code, message)
        return response.json() if response.content else None


def fail(code: int, message: str) -> NoReturn:
    typer.echo(f"polydesk: {message}", err=True)
    raise typer.Exit(code)


_state: dict[str, Any] = {}


def client() -> Client:
    return Client(_state.get("server"), _state.get("token"), _state.get("socket"))


@app.callback()
def _options(
    server: Annotated[str | None, typer.Option(envvar="POLYDESK_SERVER",
                                               help=_("URL of a remote daemon (needs --token)."))] = None,
    token: Annotated[str | None, typer.Option(envvar="POLYDESK_TOKEN", help=_("API token."))] = None,
    socket: Annotated[str | None, typer.Option(help=_("Path of the daemon's API socket."))] = None,
) -> None:
    _state.update(server=server, token=token, socket=socket)


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


# The words of the text output, in the caller's language; --json keeps the API's own tokens.
# English stays the tokens themselves, so a script reading the text output in C locale is unchanged.
WORDS = {
    "active": N_("active"), "disconnected": N_("disconnected"), "logging-off": N_("logging-off"),
    "started": N_("started"), "resumed": N_("resumed"), "ended": N_("ended"), "blocked": N_("blocked"),
    "unblocked": N_("unblocked"), "shown": N_("shown"), "would-end": N_("would-end"),
    "would-do": N_("would-do"), "unknown-session": N_("unknown-session"),
    "not-permitted": N_("not-permitted"), "failed": N_("failed"),
}


def word(token: str) -> str:
    return _(WORDS[token]) if token in WORDS else token


def printable(text: str) -> str:
    """What others typed (a browser's user agent, a message) may hold terminal escapes: show
    control characters as \\xNN instead of letting them drive the terminal."""
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


def report(answer: dict[str, Any], as_json: bool) -> NoReturn:
    results = answer["results"]
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        for r in results:
            line = f"{r['id'] or '-'}\t{r['user'] or '-'}\t{word(r['status'])}"
            if r["reason"]:
                line += f"\t{r['reason']}"
            typer.echo(printable(line), err=not r["ok"])
        if not results:
            typer.echo(_("no session to act on"))
    raise typer.Exit(exit_code(results))


def selection(ids: list[str] | None, all_: bool, own_if_empty: bool, fleet: bool = False,
              host: str | None = None) -> dict[str, Any]:
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
    preview = client().call("POST", path, json={**body, "what_if": True})["results"]
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


Ids = Annotated[list[str] | None, typer.Argument(help=_("Session ids."), show_default=False)]
All = Annotated[bool, typer.Option("--all", help=_("Every session you may act on, except your own."))]
Json = Annotated[bool, typer.Option("--json", help=_("Machine-readable output."))]
Fleet = Annotated[bool, typer.Option("--fleet", help=_("Fleet mode: with --all, every host of the fleet."))]
OnHost = Annotated[str | None, typer.Option("--host", help=_("Fleet mode: with --all, only this host."))]


@app.command()
def serve(
    config: Annotated[str | None, typer.Option(help=_("Configuration file (TOML)."))] = None,
    listen: Annotated[str | None, typer.Option(help=_("host:port for the web page and API."))] = None,
    recover: Annotated[bool, typer.Option(
        "--recover", help=_("Rebuild a damaged or missing state database from the running sessions."))]
    = False,
) -> None:
    """Run the daemon (as root)."""
    import asyncio
    import logging

    from polydesk.app import run
    from polydesk.config.settings import load_settings
    from polydesk.core.logs import limit_repeats
    from polydesk.core.model import PolydeskError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limit_repeats()  # a flood of one error (out of file descriptors) must not fill the disk
    try:
        overrides: dict[str, Any] = {"listen": listen} if listen else {}
        settings = load_settings(config, **overrides)
        asyncio.run(run(settings, recover=recover))
    except PolydeskError as exc:
        fail(USAGE, str(exc))


@app.command()
def sessions(
    as_json: Json = False,
    fleet: Annotated[bool, typer.Option("--fleet", help=_("Every host of the fleet (ids HOST/ID)."))] = False,
    host: Annotated[str | None, typer.Option("--host", help=_("Only this host of the fleet."))] = None,
) -> None:
    """List sessions, like `query session`. `>` marks your own."""
    on_fleet = fleet or host is not None
    rows = client().call("GET", "/fleet/sessions" if on_fleet else "/sessions",
                         params={"host": host} if host else None)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    header = ("", _("ID"), _("USER"), _("STATE"), _("BLOCKED"), _("DISPLAY"), _("LOGON"), _("IDLE"),
              _("CLIENT"))
    table = [header] + [
        (">" if r["own"] else "", r["id"], r["user"], word(r["state"]), _("yes") if r["blocked"] else _("no"),
         r["display"] or "-", time.strftime("%Y-%m-%d %H:%M", time.localtime(r["logon_time"])),
         _duration(r["idle_s"]), printable(r["client"] or "-"))
        + ((r["fleet_host"] + ("" if r["host_online"] else " " + _("(offline)")),) if on_fleet else ())
        for r in rows
    ]
    if on_fleet:
        table[0] += (_("HOST"),)
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def hosts(as_json: Json = False) -> None:
    """Fleet mode: the hosts of the fleet, online or offline. `*` marks this one."""
    rows = client().call("GET", "/fleet/hosts")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = [("", _("HOST"), _("STATE"), _("SESSIONS"), _("LAST SEEN"), _("ADDRESS"))] + [
        ("*" if r["local"] else "", r["name"], _("online") if r["online"] else _("offline"),
         str(r["sessions"]),
         _("now") if r["local"] else _("{seconds:.0f} s ago").format(seconds=r["last_seen_s"]),
         r["listen"] or "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return "."
    minutes = int(seconds // 60)
    return f"{minutes // 60}+{minutes % 60:02d}" if minutes >= 60 else str(minutes)


@app.command()
def logon(user: Annotated[str, typer.Argument(help=_("Account to log on."))], as_json: Json = False) -> None:
    """Start USER's session, or resume the running one."""
    answer = client().call("POST", "/sessions", json={"user": user})
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
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
        report(client().call("POST", "/sessions/logoff/cancel", json=selection(ids, all_, own_if_empty=True)),
               as_json)
    body: dict[str, Any] = {**selection(ids, all_, own_if_empty=True, fleet=fleet, host=host), "force": force,
                            "message": message, "wait": not no_wait}
    if grace is not None:
        body["grace"] = grace
    if what_if:
        report(client().call("POST", "/sessions/logoff", json={**body, "what_if": True}), as_json)
    confirm(_("Log off"), body, "/sessions/logoff", yes, _("Unsaved work in them may be lost."))
    answer = client().call("POST", "/sessions/logoff", json=body)
    if not no_wait:
        wait_until_ended(answer["results"], deadline=time.monotonic() + (grace or 30) + 120)
    report(answer, as_json)


def wait_until_ended(results: list[dict[str, Any]], deadline: float) -> None:
    """The daemon answers after a while with the sessions still logging off: follow them."""
    pending = [r for r in results if r["status"] == "logging-off"]
    api = client()
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        for result in list(pending):
            host, slash, local_id = str(result["id"]).partition("/")
            if not api.exists(f"/fleet/sessions/{host}/{local_id}" if slash else f"/sessions/{result['id']}"):
                result.update(status="ended")
                pending.remove(result)


@app.command()
def disconnect(ids: Ids = None, all_: All = False, as_json: Json = False, fleet: Fleet = False,
               host: OnHost = None) -> None:
    """Drop the viewers of sessions; they keep running. No id: your own session."""
    report(client().call("POST", "/sessions/disconnect", json=selection(ids, all_, True, fleet, host)),
           as_json)


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
    body = {**selection(ids, all_, own_if_empty=False, fleet=fleet, host=host), "message": message}
    report(client().call("POST", "/sessions/block", json=body), as_json)


@app.command()
def unblock(ids: Ids = None, all_: All = False, as_json: Json = False, fleet: Fleet = False,
            host: OnHost = None) -> None:
    """Lift the block of sessions."""
    report(client().call("POST", "/sessions/unblock", json=selection(ids, all_, False, fleet, host)),
           as_json)


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
    body = {**selection(ids, all_, own_if_empty=False, fleet=fleet, host=host), "text": text,
            "time": time_}
    report(client().call("POST", "/sessions/message", json=body), as_json)


@app.command()
def audit(
    limit: Annotated[int, typer.Option(help=_("How many entries, newest last."))] = 50,
    as_json: Json = False,
) -> None:
    """Show the audit log (administrators)."""
    records = client().call("GET", "/audit", params={"limit": limit})
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"]))
        results = ", ".join(f"{x['id']}:{x['status']}" for x in r["results"]) or "-"
        verdict = "" if r["allowed"] else " " + _("REFUSED")
        typer.echo(printable(f"{r['seq']}\t{when}\t{r['caller']}({r['role']})\t{r['action']}{verdict}\t{results}"))


@app.command("install-service")
def install_service(
    unit_dir: Annotated[str, typer.Option(help=_("Where to write polydesk.service."))]
    = "/etc/systemd/system",
    executable: Annotated[str | None, typer.Option(
        help=_("The polydesk command ExecStart runs (default: this one)."))] = None,
    no_start: Annotated[bool, typer.Option("--no-start", help=_("Enable at boot, do not start now."))]
    = False,
) -> None:
    """Install the systemd unit (root): start at boot, restart on failure, sessions kept."""
    from pathlib import Path

    from polydesk.system import systemd

    try:
        done = systemd.install(Path(unit_dir), executable, start=not no_start, say=_)
    except PermissionError as exc:
        fail(NOT_PERMITTED, _("cannot write the unit: {error} (run as root)").format(error=exc))
    except (OSError, ValueError) as exc:
        fail(USAGE, str(exc))
    for step in done.steps:
        typer.echo(step)
    raise typer.Exit(OK if done.ok else SOME_FAILED)


config_app = typer.Typer(help=_("The configuration file (docs/configuration.md)."), no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[str | None, typer.Argument(
        help=_("The file (default: $POLYDESK_CONFIG, else /etc/polydesk/polydesk.toml)."),
        show_default=False)] = None,
) -> None:
    """Check a configuration file: each bad key or value with its line. Exit 0 good, 2 bad."""
    from polydesk.config.check import check_text
    from polydesk.config.settings import DEFAULT_CONFIG

    path = file or os.environ.get("POLYDESK_CONFIG") or DEFAULT_CONFIG
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(USAGE, _("cannot read {path}: {error}").format(path=path, error=exc))
    problems = check_text(text)
    for problem in problems:
        typer.echo(printable(problem.format(path)), err=True)
    if problems:
        raise typer.Exit(USAGE)
    typer.echo(_("{path}: ok").format(path=path))


token_app = typer.Typer(help=_("API tokens for scripts (administrators): Authorization: Bearer TOKEN."),
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    user: Annotated[str | None, typer.Option(help=_("Account the token acts as (default: you)."))] = None,
    note: Annotated[str, typer.Option(help=_("What the token is for."))] = "",
    as_json: Json = False,
) -> None:
    """Make a token; it is printed once and never stored (only its digest is)."""
    answer = client().call("POST", "/tokens", json={"user": user, "note": note})
    typer.echo(json.dumps(answer, indent=2) if as_json else answer["token"])
    if not as_json:
        typer.echo(_("token {id} acts as {user}; keep it secret, it is shown only once").format(
            id=answer["id"], user=answer["user"]), err=True)


@token_app.command("list")
def token_list(as_json: Json = False) -> None:
    """List tokens (never the tokens themselves)."""
    rows = client().call("GET", "/tokens")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
        typer.echo(f"{r['id']}\t{r['user']}\t{when}\t{r['created_by']}\t{r['note']}")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help=_("Token id (from token list)."))]) -> None:
    """Revoke a token: it stops working at once."""
    client().call("DELETE", f"/tokens/{token_id}")


signin_app = typer.Typer(help=_("Web log-on holds after failed passwords (administrators)."),
                         no_args_is_help=True)
app.add_typer(signin_app, name="signin")


@signin_app.command("holds")
def signin_holds(as_json: Json = False) -> None:
    """List the failed log-on counters: account, where from, failures, held until when."""
    rows = client().call("GET", "/signin/holds")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        until = time.strftime("%H:%M:%S", time.localtime(r["until"])) if r["held"] else "-"
        fields = (r["kind"], r["user"] or "*", r["client"] or "*", str(r["failures"]), until)
        typer.echo(printable("\t".join(fields)))


@signin_app.command("unlock")
def signin_unlock(
    user: Annotated[str | None, typer.Argument(help=_("Account whose holds to clear."))] = None,
    address: Annotated[str | None, typer.Option(
        help=_("Only at this address; alone: the address's own hold."))] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help=_("Clear every hold, the server-wide one too."))] = False,
    as_json: Json = False,
) -> None:
    """Clear log-on holds so that someone may log on at once."""
    if not (user or address or all_):
        fail(USAGE, _("say whose holds to clear: USER, --address ADDRESS or --all"))
    answer = client().call("POST", "/signin/unlock", json={"user": user, "address": address, "all": all_})
    typer.echo(json.dumps(answer, indent=2) if as_json else _("cleared: {n}").format(n=answer["cleared"]))


from polydesk.cli import rooms as cli_rooms  # noqa: E402  (its commands use this module's client and options)

cli_rooms.register(app)


def _translate_help(group: typer.Typer) -> None:
    """Commands' help is their docstring: shown in the user's language (scripts/translations.py
    extracts the docstrings of this module's commands)."""
    for command in group.registered_commands:
        doc = command.help or (command.callback.__doc__ if command.callback else None)
        if doc:
            command.help = _(inspect.cleandoc(doc))
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _translate_help(sub.typer_instance)


_translate_help(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
