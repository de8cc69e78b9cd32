"""Applications in the machine's own (logind) sessions: the same as in Polydesk's where the
session has an X display Polydesk reaches and a systemd scope; refused, saying why, otherwise.

logind is mocked as in test_logind.py (python-dbusmock on a private bus); the X11 session's
screen is a real Xvfb, its leader a real process of the user. No systemd runs here, so the
session's scope is a cgroup made by the test under the cgroup2 mount, named as systemd names it
(``session-<id>.scope``), with the leader moved in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polydesk.backends.logind.backend import LogindBackend
from polydesk.core.model import Account, BackendError
from polydesk.system import processes as procs
from polydesk.system.cgroups import Mounts
from tests.backends.logind_fixtures import MockLogind, Screens
from tests.backends.test_logind import Found, as_session, backend, found  # noqa: F401
from tests.users import TestUser, user_pids


def account_of(user: TestUser) -> Account:
    return Account(user.name, user.uid, user.gid, user.home, "/bin/bash")


@contextlib.contextmanager
def scope(logind_id: str, leader: int) -> Iterator[Path]:
    """A cgroup named as systemd names a session's scope, with the leader in it."""
    base = Mounts.read().cgroup2
    assert base is not None, "these tests need a cgroup2 mount"
    path = base / f"pdt-logind-{secrets.token_hex(3)}" / f"session-{logind_id}.scope"
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text(str(leader))
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (base / "cgroup.procs").write_text(pid)  # out again, so the directories can go
        path.rmdir()
        path.parent.rmdir()


async def test_launch_list_and_close_in_an_x11_session_with_its_scope(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,  # noqa: F811
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)
    logind_id = logind.add_session(ana, type="x11", leader=xs.leader)
    session = as_session(await found.wait(logind_id))
    with scope(logind_id, xs.leader) as cgroup:
        pid = await backend.launch(session, account_of(ana), ["xmessage", "-title", "pdt logind", "hi"])
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
            assert status["Uid"].split() == [str(ana.uid)] * 4 and status["CapEff"] == "0000000000000000"
            assert str(pid) in (cgroup / "cgroup.procs").read_text().split()  # ends with the session
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"DISPLAY={xs.display}".encode() in environ
            assert f"XAUTHORITY={xs.xauthority}".encode() in environ  # the user's own file

            for _ in range(100):  # until the window is mapped
                listed = [a for a in await backend.apps(session) if a.title == "pdt logind"]
                if listed:
                    break
                await asyncio.sleep(0.05)
            assert [a.pid for a in listed] == [pid]
            assert listed and listed[0].pid_source == "server" and listed[0].start == procs.start_time(pid)

            victim = screens.process(ana)  # the same user's, outside the session's scope
            with pytest.raises(BackendError, match="nothing was signalled"):
                await backend.close_app(session, victim, procs.start_time(victim), 0.2, 0.2)
            assert procs.is_running(victim)
            how = await backend.close_app(session, pid, listed[0].start, 0.5, 0.5)
            assert how in ("closed", "terminated") and not procs.is_running(pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


async def test_refused_saying_why_without_a_scope_or_a_display(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,  # noqa: F811
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)
    x11 = as_session(await found.wait(logind.add_session(ana, type="x11", leader=xs.leader)))
    with pytest.raises(BackendError, match=r"scope \(session-.*\.scope\) was not found"):
        await backend.launch(x11, account_of(ana), ["xmessage", "hi"])
    assert await backend.apps(x11) == []  # listing needs only the display
    wayland = as_session(await found.wait(logind.add_session(ana, type="wayland",
                                                             leader=screens.process(ana))), "2")
    for call in (backend.launch(wayland, account_of(ana), ["xmessage", "hi"]), backend.apps(wayland),
                 backend.close_app(wayland, 1234, None, 0.1, 0.1)):
        with pytest.raises(BackendError, match="no X display Polydesk can reach: Wayland"):
            await call
    assert not [p for p in user_pids(ana.uid) if procs.stat_fields(p) and "xmessage" in
                Path(f"/proc/{p}/comm").read_text()]  # nothing was started
