"""The ``polydesk`` command: parses arguments and calls the daemon over HTTP.

A thin client: it never imports the manager (``serve`` alone imports the app, to run it).
The commands live by group: sessions.py (listing), actions.py (acting on sessions),
projection.py (project), chat.py (chat, hand), admin.py
(serve, audit, service, configuration, tokens, sign-in holds), rooms.py (stations, groups);
client.py reaches the daemon and output.py prints.

Exit codes: 0 all done; 1 some target failed; 2 bad usage or unknown id only;
3 not permitted; 4 daemon unreachable.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from polydesk.cli import actions, admin, apps, chat, projection, rooms, sessions, web
from polydesk.cli.client import use
from polydesk.core.i18n import _

app = typer.Typer(
    help=_("Polydesk: shared desktop sessions. List, log on, log off, disconnect, block and message."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    server: Annotated[str | None, typer.Option(envvar="POLYDESK_SERVER",
                                               help=_("URL of a remote daemon (needs --token)."))] = None,
    token: Annotated[str | None, typer.Option(envvar="POLYDESK_TOKEN", help=_("API token."))] = None,
    socket: Annotated[str | None, typer.Option(help=_("Path of the daemon's API socket."))] = None,
) -> None:
    use(server, token, socket)


# Groups without a name put their commands at the top level, in this order in --help.
for group in (sessions.app, actions.app, projection.app, apps.app, chat.app, admin.app):
    app.add_typer(group)
rooms.register(app)
web.register(app)


def _translate_help(group: typer.Typer) -> None:
    """Commands' help is their docstring: shown in the user's language (scripts/translations.py
    extracts the docstrings of the commands of every module in this package)."""
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
