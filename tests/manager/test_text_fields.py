"""Issue 13, point 2: text that people type reaches helpers (argv), windows and files. A NUL in
a log-off notice gave a 500 and left the session logging off for ever; every text field is now
checked at the boundary (a 400 naming the field), and a failure half-way through an action
leaves the session as it was, with the error in that session's result."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core.model import Session, SessionState, Status, Target
from polydesk.fleet.answer import Answers
from polydesk.fleet.wire import Signer, new_seed
from polydesk.manager.manager import Manager
from tests.harness import Daemon
from tests.manager.helpers import ADMIN, TEACHER
from tests.test_daemon import logon
from tests.users import TestUser, user_pids
from tests.web.webclient import socket_client

# What a hostile or careless client sends: each is refused in every text field.
CONTROLS = {"NUL": "a\x00b", "escape": "\x1b[2Jgone", "bell": "ring\x07", "backspace": "x\x08y",
            "DEL": "x\x7fy", "C1 NEL": "next\x85line", "C1 CSI": "\x9b2J"}


def test_control_characters_in_every_text_field_are_refused_and_change_nothing(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    sid = str(logon(daemon, ana)["id"])
    helpers = daemon.runtime_dir / "sessions" / sid / "helpers"
    fields: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
        ("/api/v1/sessions/logoff", "message", lambda v: {"ids": [sid], "message": v, "grace": 30}),
        ("/api/v1/sessions/block", "message", lambda v: {"ids": [sid], "message": v}),
        ("/api/v1/sessions/message", "text", lambda v: {"ids": [sid], "text": v}),
        ("/api/v1/sessions", "user", lambda v: {"user": v}),
        ("/api/v1/tokens", "note", lambda v: {"note": v}),
        ("/api/v1/tokens", "user", lambda v: {"user": v}),
    ]
    with socket_client(daemon) as api:
        for path, field, body in fields:
            for name, value in CONTROLS.items():
                answer = api.post(path, json=body(value))
                assert answer.status_code == 400, (path, field, name, answer.status_code, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "invalid-request" and error["message"].startswith(f"{field}: ")
                assert "control character" in error["message"], error
                session = api.get(f"/api/v1/sessions/{sid}").json()
                assert (session["state"], session["blocked"]) == ("active", False), (path, name)
        assert api.get("/api/v1/tokens").json() == []
    assert list(helpers.iterdir()) == []  # no notice, cover or message window was started
    assert not [r for r in daemon.cli_json("audit") if r["action"] in ("logoff", "block", "message")]

    # The CLI, as a person types it (argv cannot carry a NUL; the rest it can).
    for args in (["logoff", sid, "--message", "\x1b[2J"], ["block", sid, "--message", "ring\x07"],
                 ["msg", sid, "\x1b]0;title\x07"]):
        refused = daemon.cli(*args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert "control character" in refused.stderr
    # Tabs and newlines are text; the session still works as before.
    assert daemon.cli("msg", sid, "line one\n\tline two").returncode == 0
    assert daemon.cli("logoff", sid, "--force").returncode == 0
    assert user_pids(ana.uid) == [] and daemon.sessions() == []


# ---------------------------------------------------------------- the fleet and failures half-way


@pytest.fixture
def room(manager: Manager) -> tuple[Manager, FakeBackend]:
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    return manager, host


async def test_text_from_another_host_of_the_fleet_is_checked_the_same_way(
    room: tuple[Manager, FakeBackend]
) -> None:
    mgr, host = room
    session, _ = await mgr.logon(ADMIN, "ana")
    answers = Answers("lab1", mgr, Signer(new_seed()), {}, lambda: None)
    for action, options, field in (("logoff", {"message": "a\x00b"}, "message"),
                                   ("block", {"message": "\x1b[2J"}, "message"),
                                   ("message", {"text": "\x07"}, "text"),
                                   ("message", {"text": ["not", "text"]}, "text"),
                                   ("message", {"text": "hi", "timeout": "soon"}, "time"),
                                   ("logoff", {"grace": "30"}, "grace"),
                                   ("logoff", {"force": "no"}, "force")):
        meta, _ = await answers._execute(action, {"ids": [session.id], "options": options}, TEACHER)
        assert meta["error"]["code"] == "invalid-request", (action, options, meta)
        assert meta["error"]["message"].startswith(f"{field}: "), meta
    assert [c for c in host.calls if c[0] != "start"] == []
    assert (await mgr.get_session(ADMIN, session.id)).state == SessionState.ACTIVE


async def test_a_host_failure_in_the_middle_of_a_logoff_leaves_the_session_running_and_usable(
    room: tuple[Manager, FakeBackend]
) -> None:
    mgr, host = room
    session, _ = await mgr.logon(ADMIN, "ana")
    host.fail_on.add(("end", session.id))
    (failed,) = await mgr.logoff(TEACHER, Target(ids=(session.id,)), grace=0)
    assert failed.status == Status.FAILED and "fake end failure" in (failed.reason or "")
    current = await mgr.get_session(ADMIN, session.id)
    assert (current.state, current.logoff) == (SessionState.ACTIVE, None)
    restored = [r for r in mgr.audit(ADMIN) if r.detail.get("restored_to")]
    assert [(r.caller, r.action, r.detail["requested_by"], r.detail["restored_to"]) for r in restored] == [
        ("polydesk", "logoff", "teacher", "active")]
    # Everything else still works on it, and a later log-off ends it.
    assert [o.status for o in await mgr.block(TEACHER, Target(ids=(session.id,)))] == [Status.BLOCKED]
    host.fail_on.clear()
    assert [o.status for o in await mgr.logoff(TEACHER, Target(ids=(session.id,)), force=True)] == [
        Status.ENDED]
    assert await mgr.list_sessions(ADMIN) == []


async def test_a_bug_at_the_hosts_edge_in_a_logoff_nobody_waits_for_is_not_lost(
    room: tuple[Manager, FakeBackend]
) -> None:
    """The NUL case as it was: the helper spawn raised ValueError in a log-off task nobody
    awaited (the station's own log-off), and the session stayed logging off for ever."""
    mgr, host = room
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    session, _ = await mgr.logon(ADMIN, "ana")

    async def spawn_fails(*_args: object) -> None:
        raise ValueError("embedded null byte")

    host.notify_logoff = spawn_fails  # type: ignore[method-assign]
    (pending,) = await mgr.logoff(TEACHER, Target(ids=(session.id,)), grace=5, wait=False)
    assert pending.status == Status.LOGGING_OFF
    for _ in range(100):
        current = await mgr.get_session(ADMIN, session.id)
        if current.state != SessionState.LOGGING_OFF:
            break
        await asyncio.sleep(0.01)
    assert (current.state, current.logoff) == (SessionState.ACTIVE, None)
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert unhandled == []
    (failed,) = [r for r in mgr.audit(ADMIN) if r.detail.get("restored_to")]
    assert "embedded null byte" in failed.results[0]["reason"]


async def test_a_block_that_fails_half_way_is_undone(room: tuple[Manager, FakeBackend]) -> None:
    """A bug at the host's edge after it changed something (the NUL case: input switched off,
    then the cover's spawn raised ValueError): the manager puts the host back as the store has
    it. (A BackendError needs nothing: hosts put back what they did, see SessionBackend.block.)"""
    mgr, host = room
    session, _ = await mgr.logon(ADMIN, "ana")
    real_block = host.block

    async def cover_spawn_fails(target: Session, message: str) -> None:
        await real_block(target, message)  # the input is off ...
        raise ValueError("embedded null byte")  # ... and the cover never came

    host.block = cover_spawn_fails  # type: ignore[method-assign]
    (failed,) = await mgr.block(TEACHER, Target(ids=(session.id,)), "Eyes on me")
    assert failed.status == Status.FAILED and "embedded null byte" in (failed.reason or "")
    assert host.desktops[session.id].blocked_with is None  # unblocked again at the host
    assert not (await mgr.get_session(ADMIN, session.id)).blocked
