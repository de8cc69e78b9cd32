"""Launch, list and close applications through the manager (FakeBackend): roles, the audit,
bad input and the launch_allowed setting. The same on real Xvnc sessions: tests/test_apps.py."""

from __future__ import annotations

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core.model import Action, InvalidRequest, NotPermitted, Status, Target, UnknownName
from polydesk.manager.manager import Manager
from tests.manager.helpers import ADMIN, ANA, TEACHER, MakeManager, logon_all


def fake(mgr: Manager) -> FakeBackend:
    backend = mgr.backends["fake"]
    assert isinstance(backend, FakeBackend)
    return backend


async def test_launch_on_chosen_sessions_is_audited_with_the_command(manager: Manager) -> None:
    ana, bia, caio = await logon_all(manager, "ana", "bia", "caio")
    out = await manager.launch(TEACHER, Target(ids=(ana, bia)), argv=["xmessage", "a b; $(touch x)"])
    assert [o.status for o in out] == [Status.LAUNCHED, Status.LAUNCHED]
    desktops = fake(manager).desktops
    assert desktops[ana].launched == [["xmessage", "a b; $(touch x)"]]  # one vector, never split
    assert desktops[bia].launched and not desktops[caio].launched
    record = manager.audit(ADMIN, limit=1)[-1]
    assert record.action == Action.LAUNCH and record.detail["argv"] == ["xmessage", "a b; $(touch x)"]
    assert sorted(record.targets) == sorted([ana, bia])

    await manager.launch(TEACHER, Target(all=True), url="https://example.org/?q=1;$(touch /tmp/x)")
    assert desktops[caio].launched == [["xdg-open", "https://example.org/?q=1;$(touch /tmp/x)"]]
    assert manager.audit(ADMIN, limit=1)[-1].detail["url"] == "https://example.org/?q=1;$(touch /tmp/x)"


async def test_roles_as_for_message(manager: Manager) -> None:
    ana, bia, boss = await logon_all(manager, "ana", "bia", "boss")
    mine = await manager.launch(ANA, Target(ids=(ana,)), argv=["xterm"])
    assert mine[0].status == Status.LAUNCHED  # a standard user, in their own session
    other = await manager.launch(ANA, Target(ids=(bia,)), argv=["xterm"])
    assert other[0].status == Status.FORBIDDEN
    assert (await manager.launch(TEACHER, Target(ids=(boss,)), argv=["xterm"]))[0].status == Status.FORBIDDEN
    with pytest.raises(NotPermitted):
        await manager.apps(ANA, bia)
    refused = await manager.close_app(ANA, Target(ids=(bia,)), name="xterm")
    assert refused[0].status == Status.FORBIDDEN
    assert not manager.audit(ADMIN, limit=1)[-1].allowed


async def test_list_and_close_by_pid_and_by_name(manager: Manager) -> None:
    ana, bia = await logon_all(manager, "ana", "bia")
    await manager.launch(TEACHER, Target(ids=(ana, bia)), argv=["/usr/bin/xterm"])
    listed = await manager.apps(TEACHER, ana)
    assert [a.name for a in listed] == ["XTerm"]  # named by its installed .desktop file
    app = listed[0]
    wrong_start = await manager.close_app(TEACHER, Target(ids=(ana,)), pid=app.pid,
                                          start=(app.start or 0) + 1)
    assert wrong_start[0].status == Status.FAILED  # a pid reused since the list: nothing signalled
    done = await manager.close_app(TEACHER, Target(ids=(ana,)), pid=app.pid, start=app.start)
    assert done[0].status == Status.CLOSED and await manager.apps(TEACHER, ana) == []
    by_name = await manager.close_app(TEACHER, Target(ids=(ana, bia)), name="xterm")
    assert [o.status for o in by_name] == [Status.NOTHING, Status.CLOSED]
    assert manager.audit(ADMIN, limit=1)[-1].detail == {"name": "xterm"}


async def test_bad_requests_name_the_field(manager: Manager) -> None:
    (ana,) = await logon_all(manager, "ana")
    target = Target(ids=(ana,))
    for kwargs, field in (({"argv": []}, "argv"), ({"argv": ["x\0y"]}, "argv[0]"),
                          ({"url": "javascript:alert(1)"}, "url"),
                          ({"url": "--help"}, "url"), ({"app": "../x.desktop"}, "app"),
                          ({"argv": ["a"], "url": "http://x"}, "exactly one")):
        with pytest.raises(InvalidRequest, match=field.replace("[", r"\[")):
            await manager.launch(TEACHER, target, **kwargs)
    with pytest.raises(UnknownName, match=r"nothing\.desktop"):
        await manager.launch(TEACHER, target, app="nothing.desktop")
    with pytest.raises(InvalidRequest, match="one session"):
        await manager.close_app(TEACHER, Target(all=True), pid=1234)
    assert fake(manager).desktops[ana].launched == []


async def test_listed_setting_binds_dashboard_users(make_manager: MakeManager) -> None:
    manager = await make_manager(launch_allowed="listed")
    ana, teacher = await logon_all(manager, "ana", "teacher")
    typed = await manager.launch(TEACHER, Target(ids=(ana,)), argv=["xterm"])
    assert typed[0].status == Status.FORBIDDEN and "launch_allowed" in (typed[0].reason or "")
    assert (await manager.launch(TEACHER, Target(ids=(ana,)), app="debian-xterm.desktop"))[0].ok
    assert (await manager.launch(TEACHER, Target(ids=(ana,)), url="https://example.org"))[0].ok
    refused = await manager.launch(TEACHER, Target(ids=(ana,)), url="file:///etc/passwd")
    assert refused[0].status == Status.FORBIDDEN
    assert (await manager.launch(TEACHER, Target(ids=(teacher,)), argv=["xterm"]))[0].ok  # their own
    assert (await manager.launch(ADMIN, Target(ids=(ana,)), argv=["xterm"]))[0].ok
    assert fake(manager).desktops[ana].launched == [["xterm"], ["xdg-open", "https://example.org"], ["xterm"]]
