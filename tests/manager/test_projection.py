"""Projection's use cases over the in-memory backend: roles, the audit, what ends a projection,
what is refused and why. The pixels travel in tests/web/test_projection.py, on real sessions."""

from __future__ import annotations

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core.model import (
    Caller,
    Conflict,
    InvalidRequest,
    NotPermitted,
    Role,
    SessionState,
    Status,
    Target,
    UnknownSession,
)
from polydesk.core.screen import Endpoint, Server
from polydesk.manager.manager import Manager
from polydesk.manager.stations import Mode
from tests.manager.helpers import ADMIN, ANA, TEACHER, logon_all


def with_screens(mgr: Manager, *ids: str) -> None:
    backend = mgr.backends["fake"]
    assert isinstance(backend, FakeBackend)
    for session_id in ids:
        backend.rfb[session_id] = Endpoint(f"/nonexistent/{session_id}", Server())


def shown(mgr: Manager, session_id: str) -> str | None:
    projection = mgr.projected_to(session_id)
    return None if projection is None else projection.source


async def test_project_marks_the_targets_and_stop_gives_them_back(manager: Manager) -> None:
    a, b, c = await logon_all(manager, "ana", "bia", "caio")
    with_screens(manager, a, b, c)
    station = await manager.open_station(Caller("bia", 2002, Role.STANDARD), b, Mode.OWN, "test")

    async with manager.events() as events:
        outcomes = await manager.project(TEACHER, a, Target(all=True))
        started = [events.get_nowait() for _ in range(events.qsize())]
    assert {(e.session_id, e.detail["source"], e.detail["by"]) for e in started
            if e.kind == "projection-started"} == {(b, a, "teacher"), (c, a, "teacher")}

    assert {(o.id, o.status) for o in outcomes} == {(b, Status.PROJECTED), (c, Status.PROJECTED)}
    assert (shown(manager, a), shown(manager, b), shown(manager, c)) == (None, a, a)
    projection = manager.projected_to(b)
    assert projection is not None and (projection.by, projection.source_user) == ("teacher", "ana")
    # the target's own station is hung up, to connect again at once and be shown the projection
    assert station.closed.is_set() and station.switched and not station.signed_out

    stopped = await manager.stop_projecting(TEACHER, a)
    assert {(o.id, o.status) for o in stopped} == {(b, Status.PROJECTION_STOPPED),
                                                   (c, Status.PROJECTION_STOPPED)}
    assert (shown(manager, b), shown(manager, c)) == (None, None)
    records = [r for r in manager.audit(ADMIN) if r.action in ("project", "stop-projecting")]
    assert [(r.action, r.caller, sorted(r.targets), r.detail.get("source")) for r in records] == [
        ("project", "teacher", sorted([b, c]), a), ("stop-projecting", "teacher", sorted([b, c]), a)]


async def test_who_may_project_onto_whom(manager: Manager) -> None:
    a, b, boss = await logon_all(manager, "ana", "bia", "boss")
    with_screens(manager, a, b, boss)
    # a standard user may not project another's screen, nor their own onto others
    with pytest.raises(NotPermitted):
        await manager.project(ANA, b, Target(ids=(a,)))
    refused = await manager.project(ANA, a, Target(ids=(b,)))
    assert [o.status for o in refused] == [Status.FORBIDDEN]
    # a Dashboard user may not project onto an administrator's session, and --all leaves it out
    onto_admin = await manager.project(TEACHER, a, Target(ids=(boss,)))
    assert [o.status for o in onto_admin] == [Status.FORBIDDEN]
    assert "administrators" in (onto_admin[0].reason or "")
    everyone = await manager.project(TEACHER, a, Target(all=True))
    assert {o.id for o in everyone} == {b}
    assert shown(manager, boss) is None
    refusals = [r for r in manager.audit(ADMIN) if r.action == "project" and not r.allowed]
    assert {t for r in refusals for t in r.targets} >= {b, boss}


async def test_bad_requests_name_what_is_wrong_and_change_nothing(manager: Manager) -> None:
    a, b = await logon_all(manager, "ana", "bia")
    with_screens(manager, a)  # b has no screen the bridge serves (a logind seat, say)
    with pytest.raises(UnknownSession, match="'99'"):
        await manager.project(TEACHER, "99", Target(ids=(b,)))
    [elsewhere] = await manager.project(TEACHER, a, Target(ids=("other-host/3",)))
    assert (elsewhere.id, elsewhere.status) == ("other-host/3", Status.FAILED)
    assert "one host" in (elsewhere.reason or "")
    with pytest.raises(InvalidRequest, match="one host"):
        await manager.project(TEACHER, a, Target(all=True, scope="*"))
    with pytest.raises(Conflict, match="no session to project"):
        await manager.project(TEACHER, None, Target(ids=(b,)))  # the teacher has no session here
    [onto_seat] = await manager.project(TEACHER, a, Target(ids=(b,)))
    assert onto_seat.status == Status.FAILED and "cannot show a projection" in (onto_seat.reason or "")
    [onto_itself] = await manager.project(TEACHER, a, Target(ids=(a,)))
    assert onto_itself.status == Status.FAILED and "itself" in (onto_itself.reason or "")
    with_screens(manager, b)
    manager.backends["fake"].rfb.pop(a)  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match="xvnc"):
        await manager.project(TEACHER, a, Target(ids=(b,)))
    [unknown] = await manager.project(TEACHER, b, Target(ids=("42",)))
    assert unknown.status == Status.UNKNOWN and "'42'" in (unknown.reason or "")
    assert [shown(manager, s) for s in (a, b)] == [None, None]
    with_screens(manager, a)
    preview = await manager.project(TEACHER, b, Target(ids=(a,)), what_if=True)
    assert [o.status for o in preview] == [Status.WOULD_DO] and shown(manager, a) is None


async def test_a_projection_ends_with_its_source_and_a_target_leaves_by_ending(manager: Manager) -> None:
    a, b, c = await logon_all(manager, "ana", "bia", "caio")
    with_screens(manager, a, b, c)
    await manager.project(TEACHER, a, Target(ids=(b, c)))
    await manager.logoff(TEACHER, Target(ids=(c,)), force=True)
    assert shown(manager, b) == a  # a target ending leaves the others as they are

    await manager.disconnect(TEACHER, Target(ids=(a,)))  # the source disconnected: it ends
    assert shown(manager, b) is None
    [ended] = [r for r in manager.audit(ADMIN) if r.action == "stop-projecting"]
    assert (ended.caller, ended.targets, ended.detail["reason"]) == (
        "polydesk", [b], "the projected session was disconnected")

    await manager.logon(ADMIN, "ana")
    await manager.project(TEACHER, a, Target(ids=(b,)))
    await manager.logoff(TEACHER, Target(ids=(a,)), force=True)
    assert shown(manager, b) is None
    assert [r.detail.get("reason") for r in manager.audit(ADMIN) if r.action == "stop-projecting"][-1] == (
        "the projected session ended")


async def test_a_projection_and_a_block_at_once(manager: Manager) -> None:
    """Projection wins while it lasts: the block stays underneath and holds again after."""
    a, b = await logon_all(manager, "ana", "bia")
    with_screens(manager, a, b)
    await manager.block(TEACHER, Target(ids=(b,)))
    await manager.project(TEACHER, a, Target(ids=(b,)))
    session = manager.session_now(b)
    assert session is not None and session.blocked and shown(manager, b) == a
    await manager.stop_projecting(TEACHER, None)
    session = manager.session_now(b)
    assert session is not None and session.blocked and shown(manager, b) is None
    assert session.state == SessionState.ACTIVE
