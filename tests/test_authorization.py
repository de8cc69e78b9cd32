"""The authorization matrix: every session route x every kind of caller x every kind of
target, against a live daemon, compared with the table below.

Cells: the HTTP status, and for 200 answers to actions on sessions, "ok" (carried out)
or "unknown" (the result names the unknown id). The daemon's sessions are in memory
(FakeBackend) so the 8 x 5 x 5 cells take seconds; what they decide is policy, routes and
authentication, all real. CLI x role is checked the same way over the Unix socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.harness import Daemon
from tests.users import TestUser

ROUTES = ("get", "thumbnail", "connections", "logoff", "disconnect", "block", "unblock", "message")
TARGETS = ("own", "standard", "dashboard", "admin", "unknown")

ALL_OK = "200:ok " * 5
REFUSED = "403 " * 8
UNKNOWN = "404 404 404 200:unknown 200:unknown 200:unknown 200:unknown 200:unknown"
# Thumbnails of Dashboard-user and administrator sessions are hidden from everyone but their
# owner while show_privileged_sessions is off (MultiPoint's default), hence 403 there.
# Columns:         get     thumbnail connections logoff  disconnect block   unblock  message
EXPECTED: dict[str, dict[str, str]] = {
    "standard": {
        "own":       "200     200       200         200:ok  200:ok     403     403      403",
        "standard":  REFUSED,
        "dashboard": REFUSED,
        "admin":     REFUSED,
        "unknown":   UNKNOWN,
    },
    "dashboard": {
        "own":       "200     200       200         200:ok  200:ok     403     200:ok   200:ok",
        "standard":  "200     200       200         " + ALL_OK,
        "dashboard": "200     403       200         " + ALL_OK,
        "admin":     "200     403       403         403     403        403     403      403",
        "unknown":   UNKNOWN,
    },
    "admin": {
        "own":       "200     200       200         200:ok  200:ok     403     200:ok   200:ok",
        "standard":  "200     200       200         " + ALL_OK,
        "dashboard": "200     403       200         " + ALL_OK,
        "admin":     "200     403       200         " + ALL_OK,
        "unknown":   UNKNOWN,
    },
    "anonymous": {target: "401 " * 8 for target in TARGETS},
    "bad token": {target: "401 " * 8 for target in TARGETS},
}


def call(client: httpx.Client, route: str, session_id: str) -> str:
    if route in ("get", "thumbnail", "connections"):
        path = {"get": "", "thumbnail": "/thumbnail", "connections": "/connections"}[route]
        return str(client.get(f"/sessions/{session_id}{path}").status_code)
    body: dict[str, Any] = {"ids": [session_id]}
    body.update({"logoff": {"what_if": True}, "block": {"message": "x"},
                 "message": {"text": "hello"}}.get(route, {}))
    answer = client.post(f"/sessions/{route}", json=body)
    if answer.status_code != 200:
        return str(answer.status_code)
    result = answer.json()["results"][0]
    return "200:" + ("ok" if result["ok"] else "unknown" if result["status"] == "unknown-session"
                     else result["status"])


@pytest.fixture
def cast(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> dict[str, Any]:
    """Six users with a session each, and a token per role."""
    users = {"ana": make_user("ana"), "bia": make_user("bia"),
             "teacher": make_user("teacher", role="dashboard"), "dash2": make_user("dash2", role="dashboard"),
             "boss": make_user("boss", role="admin"), "boss2": make_user("boss2", role="admin")}
    sessions = {}
    for key, user in users.items():
        answer = json.loads(fake_daemon.cli("logon", user.name, "--json").stdout)
        sessions[key] = answer["session"]["id"]
    tokens = {}
    for role, key in (("standard", "ana"), ("dashboard", "teacher"), ("admin", "boss")):
        created = fake_daemon.cli("token", "create", "--user", users[key].name)
        assert created.returncode == 0, created.stderr
        tokens[role] = created.stdout.strip().split()[-1]
    return {"users": users, "sessions": sessions, "tokens": tokens}


def targets_for(role: str, sessions: dict[str, str]) -> dict[str, str]:
    own = {"standard": "ana", "dashboard": "teacher", "admin": "boss"}.get(role, "ana")
    return {"own": sessions[own], "standard": sessions["bia"], "dashboard": sessions["dash2"],
            "admin": sessions["boss2"], "unknown": "999"}


def test_rest_matrix(fake_daemon: Daemon, cast: dict[str, Any]) -> None:
    actual: dict[str, dict[str, str]] = {}
    for role in EXPECTED:
        headers = {}
        if role in cast["tokens"]:
            headers["Authorization"] = f"Bearer {cast['tokens'][role]}"
        elif role == "bad token":
            headers["Authorization"] = "Bearer not-a-token"
        with httpx.Client(base_url=f"{fake_daemon.url}/api/v1", headers=headers, timeout=30) as client:
            actual[role] = {
                target: " ".join(call(client, route, session_id) for route in ROUTES)
                for target, session_id in targets_for(role, cast["sessions"]).items()
            }
    expected = {role: {t: " ".join(cells.split()) for t, cells in row.items()}
                for role, row in EXPECTED.items()}
    mismatches = [f"{role} -> {target}: expected {expected[role][target]!r}, got {actual[role][target]!r}"
                  for role in EXPECTED for target in TARGETS
                  if actual[role][target] != expected[role][target]]
    assert not mismatches, "\n".join(mismatches)
    print(f"authorization matrix: {len(ROUTES)} routes x {len(EXPECTED)} callers x {len(TARGETS)} targets")


CLI_ACTIONS = ("logoff", "disconnect", "block", "unblock", "msg")
# Exit codes per action (columns above) for each caller role and target, over the Unix socket.
CLI_EXPECTED = {
    "standard": {"own": "0 0 3 3 3", "standard": "3 3 3 3 3", "admin": "3 3 3 3 3", "unknown": "2 2 2 2 2"},
    "dashboard": {"own": "0 0 3 0 0", "standard": "0 0 0 0 0", "admin": "3 3 3 3 3", "unknown": "2 2 2 2 2"},
    "admin": {"own": "0 0 3 0 0", "standard": "0 0 0 0 0", "admin": "0 0 0 0 0", "unknown": "2 2 2 2 2"},
}


def test_cli_matrix(fake_daemon: Daemon, cast: dict[str, Any]) -> None:
    users, sessions = cast["users"], cast["sessions"]
    callers = {"standard": users["ana"], "dashboard": users["teacher"], "admin": users["boss"]}

    def row(role: str, target: str, session_id: str) -> str | None:
        """The exit codes of every action, in order, by one caller on one target; a mismatch."""
        codes = []
        for action in CLI_ACTIONS:
            args = {"logoff": ["logoff", session_id, "--what-if"], "msg": ["msg", session_id, "hi"]}.get(
                action, [action, session_id])
            codes.append(str(fake_daemon.cli(*args, user=callers[role]).returncode))
        if " ".join(codes) == CLI_EXPECTED[role][target]:
            return None
        return f"{role} -> {target}: expected {CLI_EXPECTED[role][target]}, got {' '.join(codes)}"

    # The rows at once (each in its order): an exit code says what a caller may do, whatever the
    # state the others leave a session in.
    rows = [(role, target, session_id) for role in callers
            for target, session_id in targets_for(role, sessions).items() if target in CLI_EXPECTED[role]]
    with ThreadPoolExecutor(4) as pool:
        mismatches = [m for m in pool.map(lambda r: row(*r), rows) if m is not None]
    assert not mismatches, "\n".join(mismatches)
