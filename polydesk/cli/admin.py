"""Running and administering the daemon: ``polydesk serve``, ``audit``, ``install-service``,
``config check``, ``token create|list|revoke`` and ``signin holds|unlock``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from polydesk.cli.client import NOT_PERMITTED, OK, SOME_FAILED, USAGE, connect, fail
from polydesk.cli.output import Json, list_lines, printable, show_json, when
from polydesk.core.i18n import _

app = typer.Typer()


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
def audit(
    limit: Annotated[int, typer.Option(help=_("How many entries, newest last."))] = 50,
    as_json: Json = False,
) -> None:
    """Show the audit log (administrators)."""
    def line(r: dict[str, Any]) -> str:
        results = ", ".join(f"{x['id']}:{x['status']}" for x in r["results"]) or "-"
        verdict = "" if r["allowed"] else " " + _("REFUSED")
        return (f"{r['seq']}\t{when(r['time'], '%Y-%m-%d %H:%M:%S')}\t{r['caller']}({r['role']})"
                f"\t{r['action']}{verdict}\t{results}")

    list_lines("/audit", as_json, line, params={"limit": limit})


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
    answer = connect().call("POST", "/tokens", json={"user": user, "note": note})
    if as_json:
        show_json(answer)
        return
    typer.echo(answer["token"])
    typer.echo(_("token {id} acts as {user}; keep it secret, it is shown only once").format(
        id=answer["id"], user=answer["user"]), err=True)


@token_app.command("list")
def token_list(as_json: Json = False) -> None:
    """List tokens (never the tokens themselves)."""
    list_lines("/tokens", as_json,
               lambda r: f"{r['id']}\t{r['user']}\t{when(r['created'])}\t{r['created_by']}\t{r['note']}")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help=_("Token id (from token list)."))]) -> None:
    """Revoke a token: it stops working at once."""
    connect().call("DELETE", f"/tokens/{token_id}")


signin_app = typer.Typer(help=_("Web log-on holds after failed passwords (administrators)."),
                         no_args_is_help=True)
app.add_typer(signin_app, name="signin")


@signin_app.command("holds")
def signin_holds(as_json: Json = False) -> None:
    """List the failed log-on counters: account, where from, failures, held until when."""
    def line(r: dict[str, Any]) -> str:
        until = when(r["until"], "%H:%M:%S") if r["held"] else "-"
        return "\t".join((r["kind"], r["user"] or "*", r["client"] or "*", str(r["failures"]), until))

    list_lines("/signin/holds", as_json, line)


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
    answer = connect().call("POST", "/signin/unlock", json={"user": user, "address": address, "all": all_})
    if as_json:
        show_json(answer)
        return
    typer.echo(_("cleared: {n}").format(n=answer["cleared"]))
