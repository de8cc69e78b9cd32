"""The use cases over the in-memory FakeBackend: fast, and each behaviour here is
also proven on the real Xvnc host in tests/test_daemon.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.config.settings import Settings
from polydesk.core.events import EventBus
from polydesk.core.model import (
    InvalidRequest,
    NotPermitted,
    SessionState,
    Status,
    Target,
)
from polydesk.manager.manager import Manager
from polydesk.store.store import Store
from tests.manager.helpers import ADMIN, ANA, TEACHER, logon_all, lookup


async def test_logoff_selected_leaves_the_rest(manager: Manager) -> None:
    a, b, c = await logon_all(manager, "ana", "bia", "caio")
    outcomes = await manager.logoff(ADMIN, Target(ids=(a, b)))
    assert [(o.id, o.status) for o in outcomes] == [(a, Status.ENDED), (b, Status.ENDED)]
    assert [s.id for s in await manager.list_sessions(ADMIN)] == [c]
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    assert ("end", c) not in host.calls
    assert {e.id for e in manager.store.ended_sessions()} == {a, b}


async def test_all_never_includes_the_caller(manager: Manager) -> None:
    ids = await logon_all(manager, "ana", "bia", "boss")
    outcomes = await manager.logoff(ADMIN, Target(all=True))
    assert {o.id for o in outcomes} == set(ids[:2])
    assert [s.user for s in await manager.list_sessions(ADMIN)] == ["boss"]


async def test_dashboard_all_skips_administrators(manager: Manager) -> None:
    ana, boss = await logon_all(manager, "ana", "boss")
    outcomes = await manager.logoff(TEACHER, Target(all=True))
    assert [o.id for o in outcomes] == [ana]
    refused = await manager.logoff(TEACHER, Target(ids=(boss,)))
    assert refused[0].status == Status.FORBIDDEN
    assert "administrators" in (refused[0].reason or "")


async def test_unknown_id_named_and_others_done(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    outcomes = await manager.logoff(ADMIN, Target(ids=("999", ana)))
    assert outcomes[0].status == Status.UNKNOWN and "'999'" in (outcomes[0].reason or "")
    assert outcomes[1].status == Status.ENDED


async def test_standard_user_only_own(manager: Manager) -> None:
    ana, bia = await logon_all(manager, "ana", "bia")
    assert [s.id for s in await manager.list_sessions(ANA)] == [ana]
    refused = await manager.logoff(ANA, Target(ids=(bia,)))
    assert refused[0].status == Status.FORBIDDEN
    assert (await manager.block(ANA, Target(ids=(bia,))))[0].status == Status.FORBIDDEN
    own = await manager.logoff(ANA, Target())
    assert [(o.id, o.status) for o in own] == [(ana, Status.ENDED)]
    with pytest.raises(NotPermitted):
        await manager.logon(ANA, "bia")


async def test_every_action_audited_including_refusals(manager: Manager) -> None:
    ana, bia = await logon_all(manager, "ana", "bia")
    await manager.block(ADMIN, Target(ids=(ana,)), "Eyes up here")
    await manager.logoff(ANA, Target(ids=(bia,)))
    records = manager.audit(ADMIN)
    assert [(r.action, r.allowed) for r in records][-2:] == [("block", True), ("logoff", False)]
    assert records[-1].caller == "ana" and records[-1].targets == [bia]
    with pytest.raises(NotPermitted):
        manager.audit(ANA)
    assert manager.audit(ADMIN)[-1].action == "audit"


async def test_logon_again_resumes(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    await manager.disconnect(ADMIN, Target(ids=(ana,)))
    assert (await manager.get_session(ADMIN, ana)).state == SessionState.DISCONNECTED
    session, resumed = await manager.logon(ADMIN, "ana")
    assert resumed and session.id == ana and session.state == SessionState.ACTIVE


async def test_block_unblock_message(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    await manager.block(TEACHER, Target(ids=(ana,)))
    assert host.desktops[ana].blocked_with == "Station blocked"
    assert (await manager.get_session(ADMIN, ana)).blocked
    await manager.unblock(TEACHER, Target(ids=(ana,)))
    assert host.desktops[ana].blocked_with is None
    await manager.message(TEACHER, Target(all=True), "Ten minutes left", timeout=5)
    assert host.desktops[ana].messages == ["Ten minutes left"]
    with pytest.raises(InvalidRequest):
        await manager.message(TEACHER, Target(all=True), "   ")


async def test_grace_warns_then_ends(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    outcomes = await manager.logoff(ADMIN, Target(ids=(ana,)), grace=1, wait=False)
    assert outcomes[0].status == Status.LOGGING_OFF
    assert (await manager.get_session(ADMIN, ana)).state == SessionState.LOGGING_OFF
    await asyncio.sleep(1.5)
    assert host.desktops[ana].notices == [1]
    assert ("close_windows", ana) in host.calls
    assert await manager.list_sessions(ADMIN) == []


async def test_crash_is_recorded(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    host = manager.default_backend
    assert isinstance(host, FakeBackend)
    host.crash(ana)
    await asyncio.sleep(0.05)
    assert await manager.list_sessions(ADMIN) == []
    assert manager.store.ended_sessions()[0].reason == "crashed"


async def test_restart_readopts_and_finishes_logoffs(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path), logoff_grace=0)
    host = FakeBackend()
    store = Store(tmp_path / "polydesk.db")
    first = Manager([host], store, EventBus(), settings, lookup)
    ana = (await first.logon(ADMIN, "ana"))[0].id
    bia = (await first.logon(ADMIN, "bia"))[0].id
    await first.logoff(ADMIN, Target(ids=(bia,)), grace=60, wait=False)
    await first.close()  # the daemon dies mid log-off
    second = Manager([host], store, EventBus(), settings, lookup)
    await second.start()
    await asyncio.sleep(0.05)
    assert [s.id for s in await second.list_sessions(ADMIN)] == [ana, bia]
    assert (await second.get_session(ADMIN, bia)).state == SessionState.LOGGING_OFF
    await second.logoff(ADMIN, Target(ids=(bia,)), force=True)
    assert [s.id for s in await second.list_sessions(ADMIN)] == [ana]
    await second.close()
    store.close()


async def test_own_station_takes_over_and_disconnects_after_grace(manager: Manager) -> None:
    from polydesk.manager import attach as manager_module
    from polydesk.manager.stations import TAKEN_OVER, Mode

    (ana,) = await logon_all(manager, "ana")
    first = await manager.open_station(ANA, ana, Mode.OWN, "10.0.0.1 Firefox")
    second = await manager.open_station(ANA, ana, Mode.OWN, "10.0.0.2 Chromium")
    assert first.closed.is_set() and first.close_reason == TAKEN_OVER
    assert not second.closed.is_set()
    assert (await manager.get_session(ADMIN, ana)).client == "10.0.0.2 Chromium"
    manager.close_station(first)
    manager.close_station(second)
    manager_module.STATION_GRACE_S, old = 0.05, manager_module.STATION_GRACE_S
    try:
        third = await manager.open_station(ANA, ana, Mode.OWN, "10.0.0.3")
        manager.close_station(third)
        await asyncio.sleep(0.2)
    finally:
        manager_module.STATION_GRACE_S = old
    session = await manager.get_session(ADMIN, ana)
    assert (session.state, session.client) == (SessionState.DISCONNECTED, None)
    assert [c["client"] for c in manager.store.connections(ana)] == ["10.0.0.1 Firefox",
                                                                      "10.0.0.2 Chromium", "10.0.0.3"]
    assert all(c["disconnected_at"] for c in manager.store.connections(ana))


async def test_view_never_sends_input_and_block_stops_control(manager: Manager) -> None:
    from polydesk.manager.stations import Mode

    (ana,) = await logon_all(manager, "ana")
    view = await manager.open_station(TEACHER, ana, Mode.VIEW, "dash")
    control = await manager.open_station(TEACHER, ana, Mode.CONTROL, "dash")
    own = await manager.open_station(ANA, ana, Mode.OWN, "desk")
    assert not manager.input_allowed(view)
    assert manager.input_allowed(control) and manager.input_allowed(own)
    await manager.block(TEACHER, Target(ids=(ana,)))
    assert not manager.input_allowed(control) and not manager.input_allowed(own)
    await manager.unblock(TEACHER, Target(ids=(ana,)))
    assert manager.input_allowed(own)
    await manager.disconnect(ADMIN, Target(ids=(ana,)))
    assert all(s.closed.is_set() for s in (view, control, own))
    actions = [(r.action, r.detail.get("mode")) for r in manager.audit(ADMIN)]
    assert ("view", "view") in actions and ("control", "control") in actions


async def test_stations_refused_by_role(manager: Manager) -> None:
    from polydesk.manager.stations import Mode

    ana, boss = await logon_all(manager, "ana", "boss")
    with pytest.raises(NotPermitted):
        await manager.open_station(ANA, boss, Mode.VIEW, "x")
    with pytest.raises(NotPermitted):
        await manager.open_station(TEACHER, boss, Mode.CONTROL, "x")
    with pytest.raises(NotPermitted):
        await manager.open_station(TEACHER, ana, Mode.OWN, "x")  # not the teacher's desktop
    assert [r.allowed for r in manager.audit(ADMIN)][-3:] == [False, False, False]


async def test_multiple_sessions_when_allowed(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path), allow_multiple_sessions=True)
    store = Store(tmp_path / "polydesk.db")
    mgr = Manager([FakeBackend()], store, EventBus(), settings, lookup)
    first, resumed_first = await mgr.logon(ADMIN, "ana")
    second, resumed_second = await mgr.logon(ADMIN, "ana")
    assert first.id != second.id and not resumed_first and not resumed_second
    outcomes = await mgr.logoff(ANA, Target(), force=True)  # no id: all of the caller's own
    assert {o.id for o in outcomes} == {first.id, second.id}
    await mgr.close()
    store.close()
