"""``polydesk chat`` and ``polydesk hand``: a session's conversation from a terminal (docs/chat.md).

    polydesk chat [ID] --send TEXT   write one message (no ID: in your own session)
    polydesk chat [ID]               the conversation, then each new message as it comes; every
                                     line typed is sent (but /hand and /lower, which raise and
                                     lower the hand); it ends at the end of input (Ctrl-D)
    polydesk hand [--lower] [ID]     raise your hand (ask for help), or lower it

The words of others are shown with their control characters escaped (output.printable).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Annotated, Any

import typer

from polydesk.cli.client import USAGE, Client, connect, fail
from polydesk.cli.output import Json, printable, show_json, when
from polydesk.core.i18n import _

app = typer.Typer()

POLL_S = 1.0  # how often the interactive chat asks for new messages
_COMMANDS = {"/hand": "hand", "/lower": "hand/lower"}  # lines that are not messages
Id = Annotated[str | None, typer.Argument(help=_("The session (default: your own)."), show_default=False)]


def own_session(client: Client) -> str:
    own = [s for s in client.call("GET", "/sessions") if s.get("own")]
    if not own:
        fail(USAGE, _("you have no session: give the id of the session to chat with"))
    return str(own[0]["id"])


def line_of(message: dict[str, Any]) -> str:
    who = message["sender"] if message["from"] == "teacher" else f"{message['sender']} *"
    text = "\n    ".join(printable(part) for part in str(message["text"]).split("\n"))
    return f"[{when(message['time'], '%H:%M')}] {printable(who)}: {text}"


@app.command()
def chat(
    session: Id = None,
    send: Annotated[str | None, typer.Option("--send", help=_("Send this message and exit."))] = None,
    as_json: Json = False,
) -> None:
    """Chat in a session: its user and the Dashboard users who may message it (docs/chat.md).
    With --send, one message; without, the conversation as it comes, sending each line typed
    until the end of input."""
    client = connect()
    session_id = session or own_session(client)
    if send is not None:
        answer = client.call("POST", f"/sessions/{session_id}/chat", json={"text": send})
        if as_json:
            show_json(answer)
        return
    _interactive(client, session_id, as_json)


def _interactive(client: Client, session_id: str, as_json: bool) -> None:
    done = threading.Event()
    seen = [0]
    lock = threading.Lock()

    def show_new() -> None:
        answer = client.call("GET", f"/sessions/{session_id}/chat", params={"after": seen[0]})
        with lock:
            for message in answer["messages"]:
                if message["seq"] > seen[0]:
                    seen[0] = message["seq"]
                    typer.echo(show_line(message))

    def show_line(message: dict[str, Any]) -> str:
        return json.dumps(message) if as_json else line_of(message)

    def follow() -> None:
        while not done.wait(POLL_S):
            try:
                show_new()
            except typer.Exit:  # the session ended, or the daemon went away: the reader says so
                done.set()

    if sys.stdin.isatty():
        typer.echo(_("Type a message and press Enter to send it; /hand raises your hand, /lower "
                     "lowers it; Ctrl-D ends."), err=True)
    show_new()
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        for line in sys.stdin:
            if done.is_set():
                break
            text = line.rstrip("\n")
            if not text.strip():
                continue
            command = _COMMANDS.get(text.strip())
            try:
                if command is not None:  # /hand, /lower: the chat window's Raise hand
                    client.call("POST", f"/sessions/{session_id}/{command}")
                    typer.echo(_("Your hand is raised: the teacher sees it.") if command == "hand"
                               else _("The hand is down."), err=True)
                    continue
                client.call("POST", f"/sessions/{session_id}/chat", json={"text": text})
            except typer.Exit:  # refused (too fast, too long): said on stderr; go on
                continue
            show_new()
    finally:
        done.set()
        follower.join(timeout=POLL_S * 2)


@app.command()
def hand(
    session: Id = None,
    lower: Annotated[bool, typer.Option("--lower", help=_("Lower the hand instead."))] = False,
    as_json: Json = False,
) -> None:
    """Raise your hand: the Dashboard users see that you ask for help (--lower: put it down)."""
    client = connect()
    session_id = session or own_session(client)
    answer = client.call("POST", f"/sessions/{session_id}/hand" + ("/lower" if lower else ""))
    if as_json:
        show_json(answer)
    elif answer["hand_raised_at"]:
        typer.echo(_("Your hand is raised: the teacher sees it."))
    else:
        typer.echo(_("The hand is down."))
