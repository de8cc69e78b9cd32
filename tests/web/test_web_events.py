"""GET /api/v1/events: session changes pushed as they happen, only about sessions the caller sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.harness import Daemon
from tests.web.webclient import COOKIE, Room, logon, signin, socket_client


@contextmanager
def events(daemon: Daemon, headers: dict[str, str], query: str = "") -> Iterator[ClientConnection]:
    url = daemon.url.replace("http://", "ws://") + "/api/v1/events" + query
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        yield ws


def receive(ws: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def browser(client: httpx.Client, daemon: Daemon) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}", "Origin": daemon.url}


def test_dashboard_user_sees_sessions_start_change_and_end(room: Room) -> None:
    daemon = room.daemon
    a = logon(daemon, room.ana)
    with signin(daemon, room.teacher) as teacher, events(daemon, browser(teacher, daemon)) as ws:
        snapshot = receive(ws)
        assert snapshot["kind"] == "snapshot"
        assert [(s["id"], s["user"], s["own"]) for s in snapshot["sessions"]] == [(a, room.ana.name, False)]
        b = logon(daemon, room.bia)
        started = receive(ws)
        assert (started["kind"], started["session_id"], started["session"]["user"]) == (
            "session-started", b, room.bia.name)
        teacher.post("/api/v1/sessions/block", json={"ids": [b], "message": "Eyes up"})
        changed = receive(ws)
        assert changed["kind"] == "session-changed" and changed["session"]["blocked"] is True
        assert changed["session"]["block_message"] == "Eyes up"
        teacher.post("/api/v1/sessions/logoff", json={"ids": [a, b], "force": True})
        kinds = [(m["kind"], m["session_id"]) for m in (receive(ws) for _ in range(4))]
        assert sorted(kinds) == sorted([("session-changed", a), ("session-changed", b),
                                        ("session-ended", a), ("session-ended", b)])


def test_standard_user_hears_only_about_their_own_session(room: Room) -> None:
    daemon = room.daemon
    b = logon(daemon, room.bia)
    with signin(daemon, room.ana) as ana, events(daemon, browser(ana, daemon)) as ws:
        assert receive(ws)["sessions"] == []
        logon(daemon, room.bia)  # resumes bia's: a change ana must not hear of
        with socket_client(daemon) as root:
            root.post("/api/v1/sessions/block", json={"ids": [b]})
            root.post("/api/v1/sessions/logoff", json={"ids": [b], "force": True})
        a = logon(daemon, room.ana)
        first = receive(ws)
        assert (first["kind"], first["session_id"], first["session"]["own"]) == ("session-started", a, True)


def test_dashboard_view_leaves_out_privileged_sessions(room: Room) -> None:
    daemon = room.daemon
    logon(daemon, room.admin)
    with signin(daemon, room.teacher) as teacher:
        with events(daemon, browser(teacher, daemon), "?view=dashboard") as ws:
            assert receive(ws)["sessions"] == []
            tch = logon(daemon, room.teacher)
            a = logon(daemon, room.ana)
            assert receive(ws)["session_id"] == a  # the teacher's own (privileged) session is not shown
        with events(daemon, browser(teacher, daemon)) as ws:
            assert {s["id"] for s in receive(ws)["sessions"]} >= {a, tch}


def test_sockets_need_a_caller_and_a_same_origin_page(room: Room) -> None:
    daemon = room.daemon
    with pytest.raises(InvalidStatus), events(daemon, {}):
        pass
    with signin(daemon, room.teacher) as teacher:
        evil = {**browser(teacher, daemon), "Origin": "http://evil.example"}
        with pytest.raises(InvalidStatus), events(daemon, evil):
            pass
    with socket_client(daemon) as root:
        token = root.post("/api/v1/tokens", json={"user": room.teacher.name}).json()["token"]
    with events(daemon, {"Authorization": f"Bearer {token}"}) as ws:
        assert receive(ws)["kind"] == "snapshot"
