"""Cancel log-off (issue 14.5) and the per-session version (issue 14.6), over the FakeBackend:
a log-off in its grace period is stopped and the session put back as it was, with the
countdown taken off its screen, by whoever the roles allow, audited; a user's own log-off
needs no grace; every stored change numbers the session one higher, across a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from polydesk.backends.fake import FakeBackend
from polydesk.config.settings import Settings
from polydesk.core.events import EventBus
from polydesk.core.model import Action, LogoffPlan, SessionState, Status, Target
from polydesk.manager.manager import Manager
from polydesk.manager.stations import Mode
from polydesk.store.store import Store
from tests.harness import Daemon
from tests.manager.helpers import ADMIN, ANA, TEACHER, logon_all, lookup
from tests.users import TestUser
from tests.web.webclient import logon, signin, socket_client


async def started(tmp_path: Path, host: FakeBackend, store: Store) -> Manager:
    """A manager (logoff_grace = 30) started over ``host`` and ``store``: a restart is another one."""
    settings = Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path), logoff_grace=30, close_wait=0.1)
    manager = Manager([host], store, EventBus(), settings, lookup)
    await manager.start()
    return manager


async def test_cancel_puts_sessions_back_as_they_were_and_is_audited(tmp_path: Path) -> None:
    host, store = FakeBackend(), Store(tmp_path / "polydesk.db")
    manager = await started(tmp_path, host, store)
    ana, bia, caio = await logon_all(manager, "ana", "bia", "caio")
    station = await manager.open_station(ANA, ana, Mode.OWN, "10.0.0.1")  # ana is at her desk
    await manager.disconnect(ADMIN, Target(ids=(bia,)))
    waiting = asyncio.create_task(manager.logoff(TEACHER, Target(ids=(ana, bia))))  # waits its 30 s
    await asyncio.sleep(0.05)
    assert {s.state for s in await manager.list_sessions(ADMIN) if s.id != caio} == {SessionState.LOGGING_OFF}
    version = (await manager.get_session(ADMIN, ana)).version

    outcomes = await manager.cancel_logoff(TEACHER, Target(ids=(ana, bia, caio, "99")))
    assert [(o.id, o.status) for o in outcomes] == [
        (ana, Status.LOGOFF_CANCELLED), (bia, Status.LOGOFF_CANCELLED), (caio, Status.FAILED),
        ("99", Status.UNKNOWN)]
    assert outcomes[2].reason == "the session is not logging off"
    # whoever waited for the log-off hears that it was cancelled, not that it failed
    assert {o.status for o in await asyncio.wait_for(waiting, 5)} == {Status.LOGOFF_CANCELLED}
    now = {s.id: s for s in await manager.list_sessions(ADMIN)}
    assert (now[ana].state, now[bia].state) == (SessionState.ACTIVE, SessionState.DISCONNECTED)
    assert now[ana].logoff is None and now[ana].version > version
    assert ("withdraw_logoff_notice", ana) in host.calls and ("end", ana) not in host.calls
    (record,) = [r for r in manager.audit(ADMIN) if r.action == Action.CANCEL_LOGOFF]
    assert (record.caller, record.targets) == ("teacher", [ana, bia, caio, "99"])
    assert [r["status"] for r in record.results][:2] == ["logoff-cancelled", "logoff-cancelled"]
    manager.close_station(station)

    # it stays cancelled over a restart: nothing finishes the log-off later
    await manager.close()
    again = await started(tmp_path, host, store)
    await asyncio.sleep(0.05)
    assert {s.id for s in await again.list_sessions(ADMIN)} == {ana, bia, caio}
    assert (await again.get_session(ADMIN, ana)).version == now[ana].version  # versions are kept
    await again.close()
    store.close()


async def test_all_cancels_every_log_off_the_caller_may_and_a_restart_keeps_the_plan(tmp_path: Path) -> None:
    host, store = FakeBackend(), Store(tmp_path / "polydesk.db")
    first = await started(tmp_path, host, store)
    ana, bia, _teacher = await logon_all(first, "ana", "bia", "teacher")
    await first.logoff(ADMIN, Target(ids=(ana, bia)), wait=False)
    await first.close()  # the daemon restarts in the grace period: the stored plan is finished later...
    second = await started(tmp_path, host, store)
    assert (await second.get_session(ADMIN, ana)).state == SessionState.LOGGING_OFF
    outcomes = await second.cancel_logoff(TEACHER, Target(all=True))  # ... unless it is cancelled
    assert sorted((o.id, o.status) for o in outcomes) == [(ana, Status.LOGOFF_CANCELLED),
                                                         (bia, Status.LOGOFF_CANCELLED)]
    assert {s.state for s in await second.list_sessions(ADMIN)} == {SessionState.ACTIVE}  # as before
    assert await second.cancel_logoff(TEACHER, Target(all=True)) == []  # nothing logging off
    await second.close()
    store.close()


async def test_who_may_cancel(tmp_path: Path) -> None:
    host, store = FakeBackend(), Store(tmp_path / "polydesk.db")
    manager = await started(tmp_path, host, store)
    ana, bia, boss = await logon_all(manager, "ana", "bia", "boss")
    await manager.logoff(TEACHER, Target(ids=(ana, bia)), wait=False)
    # a student does not undo the teacher's log-off of her session, nor touch another's
    mine, other = await manager.cancel_logoff(ANA, Target(ids=(ana, bia)))
    assert mine.status == Status.FORBIDDEN and "teacher is logging your session off" in (mine.reason or "")
    assert other.status == Status.FORBIDDEN
    # a Dashboard user cannot cancel what they could not log off (an administrator's session)
    await manager.logoff(ADMIN, Target(ids=(boss,)), grace=30, wait=False)
    refused = await manager.cancel_logoff(TEACHER, Target(ids=(boss,)))
    assert refused[0].status == Status.FORBIDDEN
    assert (await manager.get_session(ADMIN, ana)).state == SessionState.LOGGING_OFF
    # too late once the grace period is over: its windows are being closed
    closing = LogoffPlan("boss", time.time() - 10, time.time() - 1, False, None, "active")
    manager.parts.set((await manager.get_session(ADMIN, bia)).with_(logoff=closing))
    late = await manager.cancel_logoff(ADMIN, Target(ids=(bia,)))
    assert late[0].status == Status.FAILED and "too late" in (late[0].reason or "")
    records = [r for r in manager.audit(ADMIN, limit=20) if r.action == Action.CANCEL_LOGOFF]
    assert [r.caller for r in records] == ["ana", "teacher", "boss"]
    await manager.close()
    store.close()


async def test_own_log_off_has_no_grace(tmp_path: Path) -> None:
    host, store = FakeBackend(), Store(tmp_path / "polydesk.db")
    manager = await started(tmp_path, host, store)
    (ana,) = await logon_all(manager, "ana")
    outcomes = await asyncio.wait_for(manager.logoff(ANA, Target()), 5)
    assert [o.status for o in outcomes] == [Status.ENDED]
    assert ("notify_logoff", ana) not in host.calls  # no countdown: the polite close only
    assert ("close_windows", ana) in host.calls
    await manager.close()
    store.close()


def test_cancel_from_the_cli_and_the_rest_api(fake_daemon: Daemon,
                                              make_user: Callable[..., TestUser]) -> None:
    ana, bia, teacher = make_user("ana"), make_user("bia"), make_user("tch", "dashboard")
    ids = [logon(fake_daemon, u) for u in (ana, bia)]
    with socket_client(fake_daemon) as root:
        answer = root.post("/api/v1/sessions/logoff", json={"ids": ids, "wait": False})
        assert [r["status"] for r in answer.json()["results"]] == ["logging-off", "logging-off"]
        versions = {s["id"]: s["version"] for s in root.get("/api/v1/sessions").json()}
    cli = fake_daemon.cli("logoff", "--cancel", ids[0], "--json", user=teacher)
    assert cli.returncode == 0, cli.stderr
    assert [r["status"] for r in json.loads(cli.stdout)["results"]] == ["logoff-cancelled"]
    refused = fake_daemon.cli("logoff", "--cancel", ids[1], user=ana)  # not hers
    assert refused.returncode != 0 and "belongs to another user" in refused.stderr
    with signin(fake_daemon, teacher) as web:
        bad = web.post("/api/v1/sessions/logoff/cancel", json={"ids": ids, "all": True})
        assert bad.status_code == 400  # one selection, and nothing is cancelled
        assert fake_daemon.sessions()[1]["state"] == "logging-off"
        answer = web.post("/api/v1/sessions/logoff/cancel", json={"all": True})
        assert answer.status_code == 200, answer.text
        assert [(r["id"], r["status"]) for r in answer.json()["results"]] == [(ids[1], "logoff-cancelled")]
    sessions = fake_daemon.sessions()
    assert [s["state"] for s in sessions] == ["active", "active"]  # as they were
    assert all(s["version"] > versions[s["id"]] for s in sessions)
