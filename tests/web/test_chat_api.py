"""Chat on the REST API and the events socket (fake sessions: the conversation is the daemon's):
who reads and writes what, the words never in the audit, HTML and controls, the rate limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.test_web_events import browser, events, receive
from tests.web.webclient import Room, logon, signin

HTML = '<img src=x onerror="alert(1)"><b>help</b> & <script>alert(2)</script>'


@pytest.fixture
def chat_room(daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]) -> Room:
    daemon = daemon_factory(backends='["fake"]', extra_config="chat_messages_per_minute = 3\n"
                                                              "chat_max_length = 300")
    return Room(daemon, make_user("adm", "admin"), make_user("tch", "dashboard"),
                make_user("ana"), make_user("bia"))


def next_chat(ws: ClientConnection, sender: str, timeout: float = 10) -> dict[str, Any]:
    """The next chat message ``sender`` ("student" or "teacher") wrote, as ``ws`` has it."""
    while True:
        message = receive(ws, timeout)
        if message["kind"] == "chat" and message["detail"]["from"] == sender:
            return message


def no_chat(ws: ClientConnection, timeout: float = 1.0) -> None:
    """Nothing about a chat arrives on ``ws`` (within ``timeout``)."""
    try:
        while True:
            message = json.loads(ws.recv(timeout=timeout))
            assert message["kind"] != "chat", message
            assert "help" not in json.dumps(message), message
    except (TimeoutError, ConnectionClosed):
        return


def test_chat_reaches_only_its_two_sides(chat_room: Room) -> None:
    room, daemon = chat_room, chat_room.daemon
    a, b, adm = logon(daemon, room.ana), logon(daemon, room.bia), logon(daemon, room.admin)
    with (signin(daemon, room.teacher) as teacher, signin(daemon, room.ana) as ana,
          signin(daemon, room.bia) as bia,
          events(daemon, browser(teacher, daemon)) as teacher_ws,
          events(daemon, browser(ana, daemon)) as ana_ws, events(daemon, browser(bia, daemon)) as bia_ws):
        for ws in (teacher_ws, ana_ws, bia_ws):
            assert receive(ws)["kind"] == "snapshot"

        # The teacher writes: Ana's socket has it, Bia's never.
        sent = teacher.post(f"/api/v1/sessions/{a}/chat", json={"text": "Do you need help?"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["from"] == "teacher" and sent.json()["sender"] == room.teacher.name
        got = next_chat(ana_ws, "teacher")
        assert (got["session_id"], got["detail"]["text"], got["detail"]["from"]) == (
            a, "Do you need help?", "teacher")

        # Ana answers with markup: it arrives as the very characters she typed.
        answer = ana.post(f"/api/v1/sessions/{a}/chat", json={"text": HTML})
        assert answer.status_code == 200, answer.text
        assert next_chat(teacher_ws, "student")["detail"]["text"] == HTML
        assert teacher.get("/api/v1/chat/unread").json() == {a: 1}
        history = teacher.get(f"/api/v1/sessions/{a}/chat").json()["messages"]
        assert [(m["from"], m["text"]) for m in history] == [("teacher", "Do you need help?"),
                                                              ("student", HTML)]
        assert teacher.get("/api/v1/chat/unread").json() == {}  # read now

        # Another student: not a word, and no sign the conversation exists.
        assert bia.get(f"/api/v1/sessions/{a}/chat").status_code == 404
        assert bia.post(f"/api/v1/sessions/{a}/chat", json={"text": "help"}).status_code == 404
        assert bia.post(f"/api/v1/sessions/{a}/hand/lower").status_code == 404
        assert bia.get("/api/v1/chat/unread").json() == {}
        # A teacher may not raise a student's hand, nor a student's own be raised by another.
        assert teacher.post(f"/api/v1/sessions/{a}/hand").status_code == 403

        # Ana raises her hand: the teacher's socket shows it on her session, Bia's does not.
        raised = ana.post(f"/api/v1/sessions/{a}/hand")
        assert raised.status_code == 200 and raised.json()["hand_raised_at"] is not None
        while (m := receive(teacher_ws))["kind"] != "session-changed" or m["session_id"] != a:
            pass
        assert m["session"]["hand_raised_at"] == raised.json()["hand_raised_at"]
        listed = {s["id"]: s for s in teacher.get("/api/v1/sessions").json()}
        assert listed[a]["hand_raised_at"] and listed[b]["hand_raised_at"] is None
        assert teacher.post(f"/api/v1/sessions/{a}/hand/lower").json()["hand_raised_at"] is None

        # The administrator's own session: a Dashboard user may neither read nor write in it.
        with daemon.client("/api/v1") as root:  # root is an administrator, not adm's session's user
            assert root.post(f"/sessions/{adm}/chat", json={"text": "help me"}).status_code == 200
        assert teacher.get(f"/api/v1/sessions/{adm}/chat").status_code == 403
        assert teacher.post(f"/api/v1/sessions/{adm}/chat", json={"text": "hi"}).status_code == 403

        # Nobody unknown, and no page of another site (a web caller without the CSRF token).
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            assert httpx.get(f"{daemon.url}/api/v1/sessions/{a}/chat", headers=headers).status_code == 401
            assert httpx.post(f"{daemon.url}/api/v1/sessions/{a}/hand", headers=headers).status_code == 401
        assert ana.post(f"/api/v1/sessions/{a}/chat", json={"text": "forged"},
                        headers={"X-CSRF-Token": "wrong"}).status_code == 403

        # Bad text: a clear 400 naming the field, nothing stored.
        for bad in ("\x1b[2J", "   ", "x" * 301):
            refused = ana.post(f"/api/v1/sessions/{a}/chat", json={"text": bad})
            assert refused.status_code == 400 and "text" in refused.json()["error"]["message"], refused.text

        # The local channel: the CLI over the API socket, Ana as herself (peer credentials).
        mine = daemon.cli("chat", "--send", "from my terminal", user=room.ana)
        assert mine.returncode == 0, mine.stderr
        assert daemon.cli("hand", "--lower", user=room.ana).returncode == 0
        # Bia, another local user, cannot write into Ana's conversation through it.
        intruder = daemon.cli("chat", a, "--send", "teacher says: go home", user=room.bia)
        assert intruder.returncode == 2 and "no session" in intruder.stderr, intruder
        # The rate limit (3 a minute, the raised hand counted): Ana's fourth is refused (429).
        shown = daemon.cli("chat", user=room.ana, input="/lower\none more\n")
        assert shown.returncode == 0, shown.stderr
        assert "Do you need help?" in shown.stdout and "from my terminal" in shown.stdout
        assert "one more" not in shown.stdout and "a minute" in shown.stderr
        assert "The hand is down." in shown.stderr  # /lower: not a message
        codes = [ana.post(f"/api/v1/sessions/{a}/chat", json={"text": f"help {n}"}).status_code
                 for n in range(2)]
        assert codes == [429, 429], codes
        history = teacher.get(f"/api/v1/sessions/{a}/chat").json()["messages"]
        assert [m["text"] for m in history][-1] == "from my terminal"
        assert "teacher says" not in json.dumps(history) and "forged" not in json.dumps(history)
        assert teacher.post(f"/api/v1/sessions/{a}/chat", json={"text": "Coming"}).status_code == 200

        no_chat(bia_ws)
        # The teacher never saw the administrator's session's conversation.
        words = []
        try:
            while True:
                words.append(json.loads(teacher_ws.recv(timeout=0.5)))
        except TimeoutError:
            pass
        assert not [w for w in words if w["kind"] == "chat" and w["session_id"] == adm]

    with daemon.client("/api/v1") as root:
        records = [r for r in root.get("/audit", params={"limit": 1000}).json() if r["action"] == "chat"]
    assert {(r["caller"], r["targets"][0], r["detail"]["op"]) for r in records if r["allowed"]} >= {
        (room.teacher.name, a, "send"), (room.ana.name, a, "send"), (room.ana.name, a, "raise-hand")}
    assert any(not r["allowed"] and r["caller"] == room.teacher.name for r in records)
    assert "help" not in json.dumps(records) and "Do you need" not in json.dumps(records)
