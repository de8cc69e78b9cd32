"""Idle and disconnected limits over the in-memory FakeBackend (fast); tests/web/test_station_limits.py
shows the same on a real daemon with real Xvnc sessions."""

from __future__ import annotations

import asyncio

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core.model import SessionState, Target
from polydesk.manager.limits import IDLE_REASON, Limits, check_interval, warning_lead
from polydesk.manager.manager import Manager
from polydesk.manager.stations import Mode
from tests.manager.helpers import ADMIN, ANA, MakeManager


def checker(manager: Manager) -> Limits:
    """A Limits to drive by hand; the manager's own loop is stopped so the two never race."""
    if manager.lifecycle.limits is not None:
        manager.lifecycle.limits.cancel()
    return Limits(manager)


def fake(manager: Manager) -> FakeBackend:
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    return host


def test_warning_lead_and_interval() -> None:
    assert warning_lead(600) == 60 and warning_lead(10) == 2
    assert check_interval(0, 0) == 5.0 and check_interval(600, 0) == 5.0
    assert check_interval(4, 0) == pytest.approx(0.4) and check_interval(0.5, 3600) == 0.2


async def test_off_by_default(make_manager: MakeManager) -> None:
    manager = await make_manager()
    assert manager.lifecycle.limits is None and not Limits(manager).enabled


async def test_idle_session_is_warned_then_disconnected(make_manager: MakeManager) -> None:
    manager = await make_manager(idle_disconnect_after=100)
    assert manager.lifecycle.limits is not None  # started with the manager
    session, _ = await manager.logon(ADMIN, "ana")
    station = await manager.open_station(ANA, session.id, Mode.OWN, "10.0.0.1 Firefox 140")
    limits, host = checker(manager), fake(manager)

    host.idle[session.id] = 50  # in use, more or less: nothing
    await limits.check()
    assert host.desktops[session.id].messages == []

    host.idle[session.id] = 85  # within the warning's lead (20 s): warned once, with the time left
    await limits.check()
    await limits.check()
    messages = host.desktops[session.id].messages
    assert len(messages) == 1 and "disconnected in 15 seconds" in messages[0]
    assert manager.store.session(session.id).state == SessionState.ACTIVE  # type: ignore[union-attr]

    host.idle[session.id] = 101  # over: disconnected; the station is told why
    await limits.check()
    assert manager.store.session(session.id).state == SessionState.DISCONNECTED  # type: ignore[union-attr]
    assert station.closed.is_set() and station.close_reason == IDLE_REASON
    records = [r for r in manager.store.audit() if r.caller == "polydesk"]
    assert [(r.action, r.targets) for r in records] == [("message", [session.id]),
                                                        ("disconnect", [session.id])]
    manager.close_station(station)


async def test_a_session_used_again_gets_a_new_warning_and_late_checks_still_warn_first(
    make_manager: MakeManager
) -> None:
    manager = await make_manager(idle_disconnect_after=100)
    session, _ = await manager.logon(ADMIN, "ana")
    limits, host = checker(manager), fake(manager)
    host.idle[session.id] = 90
    await limits.check()
    host.idle[session.id] = 3  # the user came back
    await limits.check()
    host.idle[session.id] = 150  # a check that comes late still warns before it disconnects
    await limits.check()
    assert len(host.desktops[session.id].messages) == 2
    assert manager.store.session(session.id).state == SessionState.ACTIVE  # type: ignore[union-attr]
    await limits.check()
    assert manager.store.session(session.id).state == SessionState.DISCONNECTED  # type: ignore[union-attr]


async def test_disconnected_session_is_logged_off_after_the_limit(make_manager: MakeManager) -> None:
    manager = await make_manager(disconnected_logoff_after=60)
    session, _ = await manager.logon(ADMIN, "ana")
    other, _ = await manager.logon(ADMIN, "bia")
    limits, host = checker(manager), fake(manager)
    await manager.disconnect(ADMIN, _ids(session.id))
    await limits.check(now=1000.0)  # first seen disconnected at 1000 (no station ever left it)
    await limits.check(now=1059.0)
    assert manager.store.session(session.id) is not None
    await limits.check(now=1060.0)
    await _settle(manager)
    assert manager.store.session(session.id) is None  # logged off, politely: windows asked first
    assert ("close_windows", session.id) in host.calls and ("end", session.id) in host.calls
    assert manager.store.session(other.id) is not None  # active sessions are not touched
    ended = manager.store.ended_sessions()
    assert [(e.id, e.ended_by) for e in ended] == [(session.id, "polydesk")]


async def test_disconnected_time_counts_from_when_the_station_left(make_manager: MakeManager) -> None:
    manager = await make_manager(disconnected_logoff_after=60)
    session, _ = await manager.logon(ADMIN, "ana")
    station = await manager.open_station(ANA, session.id, Mode.OWN, "desk")
    manager.close_station(station)
    await manager.disconnect(ADMIN, _ids(session.id))
    left = manager.store.connections(session.id)[0]["disconnected_at"]
    limits = checker(manager)
    await limits.check(now=left + 59)
    assert manager.store.session(session.id) is not None
    await limits.check(now=left + 61)
    await _settle(manager)
    assert manager.store.session(session.id) is None


async def test_the_loop_runs_with_short_limits(make_manager: MakeManager) -> None:
    manager = await make_manager(idle_disconnect_after=1, disconnected_logoff_after=1)
    session, _ = await manager.logon(ADMIN, "ana")
    fake(manager).idle[session.id] = 5
    for _ in range(100):
        if manager.store.session(session.id) is None:
            break
        await asyncio.sleep(0.05)
    assert manager.store.session(session.id) is None
    actions = [r.action for r in manager.store.audit() if r.caller == "polydesk"]
    assert actions[:3] == ["message", "disconnect", "logoff"]


def _ids(*ids: str) -> Target:
    return Target(ids=ids)


async def _settle(manager: Manager) -> None:
    """Let a log-off started without waiting finish."""
    for _ in range(100):
        if not manager.parts.logoffs:
            return
        await asyncio.sleep(0.01)
