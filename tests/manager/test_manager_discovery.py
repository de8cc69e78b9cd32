"""The manager's path for sessions the OS starts (DiscoveringBackend, as logind is), over an
in-memory backend: fast. The same behaviour on the real logind backend (mocked logind on a
private bus, a real daemon) is in tests/backends/test_logind.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from polydesk.backends.base import Discovered, DiscoveringBackend, Recovered, Started
from polydesk.backends.fake import FakeBackend
from polydesk.config.settings import Settings
from polydesk.core.events import EventBus
from polydesk.core.model import Account, BackendError, EndReason, Role, Session, Status, Target
from polydesk.core.screen import Screen
from polydesk.manager.manager import Manager
from polydesk.store.store import Store
from tests.manager.helpers import ADMIN, ANA, lookup


class FakeOsHost:
    """Sessions that appear and vanish by themselves, known by key (as logind's are)."""

    name = "os"

    def __init__(self, fail_open: bool = False) -> None:
        self.fail_open = fail_open
        self.live: dict[str, tuple[Discovered, asyncio.Event]] = {}
        self.queue: asyncio.Queue[Discovered] = asyncio.Queue()
        self.calls: list[tuple[str, str]] = []  # (method, key)

    def appear(self, key: str, user: str, uid: int) -> None:
        found = Discovered(key=key, user=user, uid=uid, logon_time=time.time(), display=":0",
                           client="seat1", data={"details": {"seat": "seat1"}})
        self.live[key] = (found, asyncio.Event())
        self.queue.put_nowait(found)

    def vanish(self, key: str) -> None:
        self.live.pop(key)[1].set()

    async def open(self) -> None:
        self.calls.append(("open", ""))
        if self.fail_open:
            raise BackendError("the system bus has no org.freedesktop.login1")

    async def discover(self, found: Callable[[Discovered], Awaitable[None]]) -> None:
        for listed, _ in list(self.live.values()):
            await found(listed)
        while True:
            await found(await self.queue.get())

    def _key(self, method: str, session: Session) -> str:
        key = str(session.backend_data["key"])
        self.calls.append((method, key))
        return key

    async def start(self, session_id: str, account: Account) -> Started:
        raise BackendError("started by the system")

    async def recover(self) -> list[Recovered]:
        return []  # its sessions are found again by discover

    async def adopt(self, session: Session) -> bool:
        return session.backend_data["key"] in self.live

    async def wait_ended(self, session: Session) -> EndReason:
        entry = self.live.get(str(session.backend_data["key"]))
        if entry is not None:
            await entry[1].wait()
        return EndReason.LOGOUT

    async def end(self, session: Session, kill_after: float) -> None:
        key = self._key("end", session)
        if key in self.live:
            self.vanish(key)

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        self._key("notify_logoff", session)

    async def withdraw_logoff_notice(self, session: Session) -> None:
        self._key("withdraw_logoff_notice", session)

    async def close_windows(self, session: Session) -> int:
        return 0

    async def open_windows(self, session: Session) -> int:
        return 0

    async def processes(self, session: Session) -> list[int]:
        return []

    async def disconnect(self, session: Session) -> None:
        self._key("disconnect", session)
        raise BackendError("disconnect is not supported for this session type (local x11)")

    async def block(self, session: Session, message: str) -> None:
        self._key("block", session)

    async def unblock(self, session: Session) -> None:
        self._key("unblock", session)

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        self._key("message", session)

    async def idle_seconds(self, session: Session) -> float | None:
        return 1.0

    def screen(self, session: Session) -> Screen | None:
        return None

    def screen_unavailable_reason(self, session: Session) -> str | None:
        return None

    def rfb_socket(self, session: Session) -> str | None:
        return None

    async def close(self) -> None:
        self.calls.append(("close", ""))


class Room:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path), logoff_grace=0,
                                 close_wait=0.1)
        self.store = Store(tmp_path / "polydesk.db")
        self.os = FakeOsHost()
        self.fake = FakeBackend()
        self.managers: list[Manager] = []

    async def manager(self) -> Manager:
        # The discovering backend first: logons must still go to the backend that starts sessions.
        mgr = Manager([self.os, self.fake], self.store, EventBus(), self.settings, lookup)
        await mgr.start()
        self.managers.append(mgr)
        return mgr

    async def close(self) -> None:
        for mgr in self.managers:
            await mgr.close()
        self.store.close()


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    made = Room(tmp_path)
    yield made
    await made.close()


async def listed(mgr: Manager, count: int) -> list[Session]:
    deadline = time.monotonic() + 5
    while len(sessions := await mgr.list_sessions(ADMIN)) != count:
        assert time.monotonic() < deadline, f"expected {count} sessions, have {sessions}"
        await asyncio.sleep(0.01)
    return sessions


def test_the_fake_is_a_discovering_host() -> None:
    assert isinstance(FakeOsHost(), DiscoveringBackend) and not isinstance(FakeBackend(), DiscoveringBackend)


async def test_found_sessions_get_ids_and_roles_from_their_accounts(room: Room) -> None:
    mgr = await room.manager()
    own, _ = await mgr.logon(ADMIN, "bia")
    room.os.appear("boot/3/1", "teacher", 2004)
    room.os.appear("boot/4/1", "ana", 2001)
    room.os.appear("boot/3/1", "teacher", 2004)  # the listing and SessionNew overlap

    sessions = {s.user: s for s in await listed(mgr, 3)}

    assert sessions["bia"].id == own.id and sessions["bia"].backend == "fake"
    teacher, ana = sessions["teacher"], sessions["ana"]
    assert (teacher.backend, teacher.role, teacher.display, teacher.client) == (
        "os", Role.DASHBOARD, ":0", "seat1")
    assert ana.role == Role.STANDARD and teacher.backend_data["key"] == "boot/3/1"
    assert len({own.id, teacher.id, ana.id}) == 3
    found = [r for r in mgr.audit(ADMIN) if r.detail.get("discovered")]
    assert [(r.caller, r.action, r.targets) for r in found] == [
        ("polydesk", "logon", [teacher.id]), ("polydesk", "logon", [ana.id])]


async def test_a_session_that_vanishes_ends_as_a_logout(room: Room) -> None:
    mgr = await room.manager()
    room.os.appear("boot/3/1", "ana", 2001)
    (session,) = await listed(mgr, 1)
    room.os.vanish("boot/3/1")
    await listed(mgr, 0)
    (ended,) = room.store.ended_sessions()
    assert (ended.id, ended.reason, ended.ended_by) == (session.id, EndReason.LOGOUT, "ana")
    assert ("end", "boot/3/1") in room.os.calls  # the backend tidies up what it kept


async def test_actions_go_to_the_sessions_own_host(room: Room) -> None:
    mgr = await room.manager()
    room.os.appear("boot/3/1", "ana", 2001)
    room.os.appear("boot/4/1", "bia", 2002)
    ids = {s.user: s.id for s in await listed(mgr, 2)}
    own, _ = await mgr.logon(ADMIN, "caio")

    assert [o.status for o in await mgr.block(ADMIN, Target(ids=(ids["ana"],)))] == [Status.BLOCKED]
    refused = await mgr.disconnect(ADMIN, Target(ids=(ids["bia"],)))
    assert refused[0].status == Status.FAILED and "not supported" in (refused[0].reason or "")
    outcomes = await mgr.logoff(ADMIN, Target(ids=(ids["ana"], own.id)), force=True)

    assert {o.status for o in outcomes} == {Status.ENDED}
    assert ("block", "boot/3/1") in room.os.calls and ("end", "boot/3/1") in room.os.calls
    assert ("end", "boot/4/1") not in room.os.calls
    assert ("end", own.id) in room.fake.calls and ("end", ids["ana"]) not in room.fake.calls


async def test_logon_never_resumes_a_found_session(room: Room) -> None:
    mgr = await room.manager()
    room.os.appear("boot/3/1", "ana", 2001)
    (found,) = await listed(mgr, 1)
    session, resumed = await mgr.logon(ADMIN, "ana")
    assert not resumed and session.id != found.id and session.backend == "fake"


async def test_standard_users_act_only_on_their_own_found_session(room: Room) -> None:
    mgr = await room.manager()
    room.os.appear("boot/3/1", "ana", 2001)
    room.os.appear("boot/4/1", "bia", 2002)
    ids = {s.user: s.id for s in await listed(mgr, 2)}
    refused = await mgr.logoff(ANA, Target(ids=(ids["bia"],)), force=True)
    assert refused[0].status == Status.FORBIDDEN
    assert [s.user for s in await mgr.list_sessions(ANA)] == ["ana"]
    assert [o.status for o in await mgr.logoff(ANA, Target(), force=True)] == [Status.ENDED]
    assert ("end", "boot/3/1") in room.os.calls and ("end", "boot/4/1") not in room.os.calls


async def test_a_restart_keeps_ids_and_ends_what_vanished_meanwhile(room: Room) -> None:
    first = await room.manager()
    room.os.appear("boot/3/1", "ana", 2001)
    room.os.appear("boot/4/1", "bia", 2002)
    ids = {s.user: s.id for s in await listed(first, 2)}
    await first.close()

    room.os.vanish("boot/4/1")
    room.os.queue = asyncio.Queue()  # the new daemon lists afresh
    second = await room.manager()

    (kept,) = await listed(second, 1)
    assert (kept.user, kept.id) == ("ana", ids["ana"])
    (ended,) = room.store.ended_sessions()
    assert (ended.id, ended.reason) == (ids["bia"], EndReason.LOGOUT)
    room.os.appear("boot/5/1", "caio", 2003)
    new = {s.user: s.id for s in await listed(second, 2)}["caio"]
    assert new not in ids.values()


async def test_an_unknown_account_gets_the_least_role(room: Room) -> None:
    mgr = await room.manager()
    room.os.appear("boot/3/1", "ldap-gone", 5000)
    (session,) = await listed(mgr, 1)
    assert (session.user, session.uid, session.role) == ("ldap-gone", 5000, Role.STANDARD)


async def test_a_host_that_cannot_open_stops_the_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "polydesk.db")
    mgr = Manager([FakeBackend(), FakeOsHost(fail_open=True)], store, EventBus(),
                  Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path)), lookup)
    with pytest.raises(BackendError, match=r"no org\.freedesktop\.login1"):
        await mgr.start()
    await mgr.close()
    store.close()


async def test_the_os_sessions_of_root_and_of_services_are_not_taken_in(room: Room) -> None:
    """Issue 13: root's SSH login or a display manager's greeter (a system account) is not a
    desktop for the Dashboard to watch or drive; refused once, audited once, by name."""
    mgr = await room.manager()
    room.os.appear("boot/1/1", "root", 0)
    room.os.appear("boot/2/1", "lightdm", 112)  # unknown to the lookup: its uid decides
    room.os.appear("boot/1/1", "root", 0)  # reported again (listing and signal overlap)
    room.os.appear("boot/3/1", "ana", 2001)
    assert [s.user for s in await listed(mgr, 1)] == ["ana"]
    refused = [r for r in mgr.audit(ADMIN) if not r.allowed]
    assert [(r.detail["user"], r.detail["discovered"]) for r in refused] == [
        ("root", True), ("lightdm", True)]
    assert "superuser" in refused[0].detail["reason"] and "system account" in refused[1].detail["reason"]
