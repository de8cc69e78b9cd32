"""The logind backend (issue 7) against logind on the real D-Bus protocol, and real X displays.

systemd-logind cannot run on this machine (no systemd as PID 1), so logind is mocked:
python-dbusmock's ``logind`` template on a private dbus-daemon (see logind_fixtures).
Every X11 session's screen is a real Xvfb display, found through a real leader
process's environment. The first half drives LogindBackend directly; the second half
drives a real ``polydesk serve`` through the CLI and the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from dbus_fast import Variant
from PIL import Image
from Xlib import X

from polydesk.backends.base import Discovered
from polydesk.backends.logind.backend import LogindBackend
from polydesk.backends.logind.local import write_terminal
from polydesk.core.model import BackendError, Role, Session, SessionState
from polydesk.core.screen import Screen
from polydesk.system import processes as procs
from polydesk.system.x11 import client as x11
from polydesk.thumbnails.feed import placeholder
from tests.backends.logind_fixtures import INERT, TERMINATE, MockLogind, Screens, private_bus
from tests.harness import Daemon, await_for, wait_for
from tests.users import TestUser

# ================================================================ the backend on its own


class Found:
    """What a running ``discover`` reported, by logind id."""

    def __init__(self) -> None:
        self.sessions: dict[str, Discovered] = {}
        self.reports = 0

    async def __call__(self, found: Discovered) -> None:
        self.reports += 1
        self.sessions[str(found.data["logind_id"])] = found

    async def wait(self, logind_id: str) -> Discovered:
        await await_for(lambda: logind_id in self.sessions, what=f"logind session {logind_id}")
        return self.sessions[logind_id]


def as_session(found: Discovered, session_id: str = "1") -> Session:
    """The session as the manager would record it."""
    return Session(id=session_id, user=found.user, uid=found.uid, role=Role.STANDARD, backend="logind",
                   state=SessionState.ACTIVE, logon_time=found.logon_time, display=found.display,
                   client=found.client, backend_data={**found.data, "key": found.key})


@pytest.fixture
async def backend(logind: MockLogind, runtime_dir: Path) -> AsyncIterator[LogindBackend]:
    made = LogindBackend(runtime_dir, bus=logind.address)
    await made.open()
    yield made
    await made.close()


@pytest.fixture
async def found(backend: LogindBackend) -> AsyncIterator[Found]:
    seen = Found()
    task = asyncio.create_task(backend.discover(seen))
    yield seen
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def helper_windows(screen: Screen) -> list[str]:
    """Titles of Polydesk's helper windows mapped on the display (cover, notice, message)."""
    with x11.connection(screen) as conn:
        marker = conn.intern_atom(x11.HELPER_PROPERTY)
        titles = []
        for window in conn.screen().root.query_tree().children:
            with contextlib.suppress(Exception):
                if (window.get_property(marker, X.AnyPropertyType, 0, 1) is not None
                        and window.get_attributes().map_state == X.IsViewable):
                    titles.append(str(window.get_wm_name()))
        return titles


async def test_lists_sessions_with_seat_tty_type_class_and_remote_host(
        logind: MockLogind, backend: LogindBackend, account: Callable[[str], TestUser]) -> None:
    ana, bia = account("ana"), account("bia")
    local = logind.add_session(ana, seat="seat1", tty="tty7", type="x11", display=":5", announce=False)
    ssh = logind.add_session(bia, seat="", tty="pts/3", type="tty", remote=True,
                             remote_host="10.0.0.7", service="sshd", announce=False)
    logind.add_session(ana, type="x11", session_class="greeter", announce=False)  # a login screen
    seen = Found()
    task = asyncio.create_task(backend.discover(seen))
    try:
        await seen.wait(local)
        await seen.wait(ssh)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert set(seen.sessions) == {local, ssh}, "greeters are not users' sessions"
    desk, remote = seen.sessions[local], seen.sessions[ssh]
    assert (desk.user, desk.uid, desk.display, desk.client) == (ana.name, ana.uid, ":5", "seat1 tty7")
    assert {k: desk.data[k] for k in ("seat", "tty", "type", "class", "remote")} == {
        "seat": "seat1", "tty": "tty7", "type": "x11", "class": "user", "remote": False}
    assert (remote.client, remote.data["seat"], remote.data["type"], remote.data["remote_host"],
            remote.data["service"]) == ("10.0.0.7", "", "tty", "10.0.0.7", "sshd")
    assert abs(desk.logon_time - time.time()) < 60
    assert desk.key != remote.key and desk.key.endswith(f"/{local}/{desk.key.rsplit('/', 1)[-1]}")


async def test_follows_new_and_removed_sessions_from_signals(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    session_id = logind.add_session(ana, type="tty", tty="tty3")
    session = as_session(await found.wait(session_id))
    assert await backend.adopt(session)
    ended = asyncio.create_task(backend.wait_ended(session))
    await asyncio.sleep(1.5)
    assert not ended.done()
    assert _methods(logind).count("ListSessions") == 1, "listed once, then signals: no polling"

    logind.remove_session(session_id)

    assert await asyncio.wait_for(ended, 10) == "logout"
    assert not await backend.adopt(session)


async def test_a_forged_session_removed_signal_is_not_believed(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    """Anyone on the bus may emit a signal; logind itself is asked before a session is ended."""
    ana = account("ana")
    session_id = logind.add_session(ana, type="tty", tty="tty4")
    session = as_session(await found.wait(session_id))
    ended = asyncio.create_task(backend.wait_ended(session))
    logind.call("/org/freedesktop/login1", "org.freedesktop.DBus.Mock", "EmitSignal", "sssav",
                ["org.freedesktop.login1.Manager", "SessionRemoved", "so",
                 [Variant("s", session_id), Variant("o", f"/org/freedesktop/login1/session/{session_id}")]])
    await asyncio.sleep(0.5)
    assert not ended.done()
    ended.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ended


async def test_end_terminates_the_session_through_logind(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    keep, end = (logind.add_session(ana, type="tty", tty=f"tty{n}") for n in (5, 6))
    sessions = {sid: as_session(await found.wait(sid), sid) for sid in (keep, end)}
    logind.clear_calls()

    await backend.end(sessions[end], kill_after=1)
    await backend.end(sessions[end], kill_after=1)  # idempotent: a second call asks nothing more

    assert logind.called_ids("TerminateSession") == [end]
    assert logind.calls("KillSession") == []
    assert not logind.has_session(end) and logind.has_session(keep)
    assert await backend.wait_ended(sessions[end]) == "logout"


async def test_a_session_outliving_terminate_is_killed(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    logind.set_method("TerminateSession", "s", INERT)
    logind.set_method("KillSession", "ssi", TERMINATE)
    session_id = logind.add_session(ana, type="tty", tty="tty8")
    session = as_session(await found.wait(session_id))
    started = time.monotonic()

    await backend.end(session, kill_after=0.5)

    assert time.monotonic() - started >= 0.5
    assert logind.called_ids("TerminateSession") == [session_id]
    assert logind.calls("KillSession") == [[session_id, "all", signal.SIGKILL]]
    assert not logind.has_session(session_id)


async def test_a_session_logind_cannot_end_is_a_host_error(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    logind.set_method("TerminateSession", "s", INERT)
    session_id = logind.add_session(ana, type="tty", tty="tty9")
    session = as_session(await found.wait(session_id))
    with pytest.raises(BackendError, match="still there"):
        await backend.end(session, kill_after=0.1)


async def test_screen_of_an_x11_session_comes_from_its_leader(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser], runtime_dir: Path) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)
    session_id = logind.add_session(ana, type="x11", leader=xs.leader)
    session = as_session(await found.wait(session_id))

    screen = backend.screen(session)

    assert screen is not None and screen.display == xs.display
    copy = Path(screen.xauthority)
    assert copy.is_relative_to(runtime_dir) and copy.stat().st_uid == 0
    assert copy.stat().st_mode & 0o777 == 0o600, "the daemon's own copy of the cookie"
    assert backend.screen_unavailable_reason(session) is None
    with x11.connection(Screen(screen.display, str(copy))) as conn:
        assert conn.screen().root.get_geometry().width == 640
    assert (await backend.idle_seconds(session) or 0) >= 0
    assert await backend.processes(session) == [xs.leader]


async def test_a_cookie_file_of_another_user_is_never_used(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser]) -> None:
    """ana's leader names bia's cookie file: that must not make bia's display ana's thumbnail."""
    ana, bia = account("ana"), account("bia")
    theirs = screens.xvfb(bia)
    leader = screens.process(ana, env={"DISPLAY": theirs.display, "XAUTHORITY": str(theirs.xauthority)})
    session_id = logind.add_session(ana, type="x11", leader=leader)
    session = as_session(await found.wait(session_id))
    assert backend.screen(session) is None
    assert "X cookie were not found" in (backend.screen_unavailable_reason(session) or "")


async def test_wayland_and_text_sessions_have_no_screen_and_say_why(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)  # even with a DISPLAY (Xwayland) in its environment
    wayland = as_session(await found.wait(logind.add_session(ana, type="wayland", leader=xs.leader)))
    text = as_session(await found.wait(logind.add_session(ana, type="tty", tty="tty2",
                                                          leader=xs.leader)))
    assert backend.screen(wayland) is None and backend.screen(text) is None
    assert "Wayland" in (backend.screen_unavailable_reason(wayland) or "")
    assert "Text session (tty)" in (backend.screen_unavailable_reason(text) or "")


async def test_block_locks_and_covers_an_x11_session_and_unblock_undoes_both(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)
    session_id = logind.add_session(ana, type="x11", leader=xs.leader)
    session = as_session(await found.wait(session_id))
    screen = backend.screen(session)
    assert screen is not None

    await backend.block(session, "Estação bloqueada")

    assert logind.called_ids("LockSession") == [session_id]
    assert helper_windows(screen) == ["Polydesk: blocked"]

    await backend.unblock(session)

    assert logind.called_ids("UnlockSession") == [session_id]
    wait_for(lambda: helper_windows(screen) == [], what="the cover to go")


async def test_wayland_block_is_logind_lock_only_and_text_block_is_refused(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    wayland_id = logind.add_session(ana, type="wayland")
    wayland = as_session(await found.wait(wayland_id))
    text = as_session(await found.wait(logind.add_session(ana, type="tty", tty="tty2")))
    await backend.block(wayland, "blocked")
    assert logind.called_ids("LockSession") == [wayland_id]
    with pytest.raises(BackendError, match="not supported for this session type"):
        await backend.block(text, "blocked")
    assert logind.called_ids("LockSession") == [wayland_id]


async def test_message_and_logoff_notice_on_an_x11_display(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    xs = screens.xvfb(ana)
    session = as_session(await found.wait(logind.add_session(ana, type="x11", leader=xs.leader)))
    assert backend.screen(session) is not None
    screen = Screen(xs.display, str(xs.xauthority))  # the backend's copy goes with the session

    await backend.message(session, "Aula termina em 5 minutos", None)
    await backend.notify_logoff(session, 30, "You will be logged off in 30 seconds.")

    wait_for(lambda: sorted(helper_windows(screen)) == ["Message", "Polydesk: log-off"],
             what="the message and the notice")
    await backend.end(session, kill_after=1)  # the helper windows go with the session
    wait_for(lambda: helper_windows(screen) == [], what="the helper windows to go")


async def test_message_and_notice_on_a_text_session_go_to_its_terminal(
        logind: MockLogind, backend: LogindBackend, found: Found, account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    master, slave = os.openpty()
    try:
        tty = os.ttyname(slave).removeprefix("/dev/")
        session = as_session(await found.wait(logind.add_session(ana, type="tty", tty=tty,
                                                                 remote=True, service="sshd")))
        await backend.message(session, "server restarts at 18:00", None)
        await backend.notify_logoff(session, 10, "You will be logged off in 10 seconds.")
        out = _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    assert "*** Polydesk: server restarts at 18:00" in out
    assert "You will be logged off in 10 seconds. (10 s)" in out
    with pytest.raises(OSError, match="not a terminal name"):
        write_terminal("../etc/passwd", "no")
    wayland = as_session(await found.wait(logind.add_session(ana, type="wayland", tty="tty2")))
    with pytest.raises(BackendError, match="not supported for this session type"):
        await backend.message(wayland, "nobody would see this on a graphical VT", None)


async def test_disconnect_drops_an_ssh_connection_and_refuses_the_rest(
        logind: MockLogind, backend: LogindBackend, found: Found, screens: Screens,
        account: Callable[[str], TestUser]) -> None:
    ana = account("ana")
    sshd = screens.process(ana, name="sshd")  # stands for "sshd: ana [priv]"
    ssh = as_session(await found.wait(logind.add_session(
        ana, seat="", tty="pts/9", type="tty", remote=True, remote_host="10.1.2.3", service="sshd",
        leader=sshd)))
    seat = as_session(await found.wait(logind.add_session(ana, type="x11", seat="seat0")))
    not_sshd = screens.process(ana)
    odd = as_session(await found.wait(logind.add_session(
        ana, seat="", type="tty", remote=True, service="sshd", leader=not_sshd)))

    with pytest.raises(BackendError, match="not supported for this session type"):
        await backend.disconnect(seat)
    with pytest.raises(BackendError, match="not an sshd process"):
        await backend.disconnect(odd)
    await backend.disconnect(ssh)

    wait_for(lambda: not procs.is_running(sshd), what="sshd's session process to end")
    assert procs.is_running(not_sshd)


def test_x_servers_with_other_extensions_do_not_break_each_other(
        screens: Screens, account: Callable[[str], TestUser]) -> None:
    """A daemon with logind talks to Xorg seats and to Xvnc; their extensions' event codes differ.
    python-xlib shared one table of them per process (polydesk.system.x11.client gives each its own)."""
    ana = account("ana")
    plain, full = screens.xvfb(ana, args=("-extension", "XFIXES")), screens.xvfb(ana)
    for xs in (plain, full, plain, full):
        with x11.connection(Screen(xs.display, str(xs.xauthority))) as conn:
            assert (conn.query_extension("XFIXES") is not None) == (xs is full)


def _methods(logind: MockLogind) -> list[str]:
    log = logind.call("/org/freedesktop/login1", "org.freedesktop.DBus.Mock", "GetCalls")[0]
    return [str(name) for _, name, _ in log]


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


# ================================================================ through a real daemon


def logind_daemon(daemon_factory: Callable[..., Daemon], logind: MockLogind, extra: str = "") -> Daemon:
    """A real ``polydesk serve`` with both backends, its logind on the private bus."""
    return daemon_factory(extra_config=f'logind_bus = "{logind.address}"\nkill_after = 1\n{extra}',
                          backends='["xvnc", "logind"]')


def sessions_by_logind_id(daemon: Daemon, user: TestUser | None = None) -> dict[str, dict[str, Any]]:
    """The daemon's logind sessions (``sessions --json``), by logind id."""
    return {s["details"]["logind_id"]: s for s in daemon.cli_json("sessions", user=user)
            if s["backend"] == "logind"}


def wait_listed(daemon: Daemon, logind_ids: list[str]) -> dict[str, dict[str, Any]]:
    wait_for(lambda: set(logind_ids) <= set(sessions_by_logind_id(daemon)), timeout=20,
             what=f"logind sessions {logind_ids} in the daemon's list")
    return sessions_by_logind_id(daemon)


def logon(daemon: Daemon, user: TestUser) -> str:
    result = daemon.cli("logon", user.name, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session"]["id"])


def jpeg(daemon: Daemon, session_id: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://polydesk",
                      timeout=60) as client:
        return client.get(f"/api/v1/sessions/{session_id}/thumbnail", params={"size": "small"})


def test_daemon_lists_logind_sessions_beside_its_own_and_follows_them(
        daemon_factory: Callable[..., Daemon], logind: MockLogind, screens: Screens,
        make_user: Callable[..., TestUser]) -> None:
    ana, teacher, bia = make_user("ana"), make_user("tch", "dashboard"), make_user("bia")
    xs = screens.xvfb(ana)
    at_seat = logind.add_session(ana, seat="seat1", tty="tty7", display=xs.display, leader=xs.leader)
    daemon = logind_daemon(daemon_factory, logind)
    own = logon(daemon, bia)
    ssh = logind.add_session(teacher, seat="", tty="pts/2", type="tty", remote=True,
                             remote_host="192.0.2.9", service="sshd")

    listed = wait_listed(daemon, [at_seat, ssh])

    rows = {row["id"]: row for row in daemon.sessions()}
    assert rows[own]["backend"] == rows[own]["host"] == "xvnc" and len(rows) == 3  # "host": deprecated
    seat_row, ssh_row = listed[at_seat], listed[ssh]
    assert (seat_row["backend"], seat_row["user"], seat_row["role"], seat_row["display"],
            seat_row["client"]) == ("logind", ana.name, "standard", xs.display, "seat1 tty7")
    assert (ssh_row["user"], ssh_row["role"], ssh_row["client"]) == (teacher.name, "dashboard", "192.0.2.9")
    assert seat_row["details"] == {
        "logind_id": at_seat, "seat": "seat1", "tty": "tty7", "type": "x11", "class": "user",
        "remote": False, "remote_host": "", "service": "gdm-password"}
    assert (ssh_row["details"]["type"], ssh_row["details"]["remote"], ssh_row["details"]["seat"]) == (
        "tty", True, "")
    assert len({own, seat_row["id"], ssh_row["id"]}) == 3, "one id space for both backends"
    table = daemon.cli("sessions").stdout
    assert "192.0.2.9" in table and "seat1 tty7" in table

    logind.remove_session(ssh)  # the teacher typed "exit"

    wait_for(lambda: ssh_row["id"] not in {r["id"] for r in daemon.sessions()}, what="the SSH session to go")
    ended = [r for r in daemon.cli_json("audit") if r["targets"] == [ssh_row["id"]]][-1]
    assert (ended["caller"], ended["action"], ended["detail"]["reason"]) == ("polydesk", "logoff", "logout")
    assert logind.calls("TerminateSession") == [], "ended by itself: nothing to terminate"


def test_logoff_of_one_selected_and_all_terminates_exactly_those(
        daemon_factory: Callable[..., Daemon], logind: MockLogind,
        make_user: Callable[..., TestUser]) -> None:
    ana, bia, caio = make_user("ana"), make_user("bia"), make_user("caio")
    logind_ids = [logind.add_session(user, type="tty", tty=f"tty{n}")
                  for n, user in enumerate((ana, bia, caio, caio), start=2)]
    daemon = logind_daemon(daemon_factory, logind)
    ids = {lid: row["id"] for lid, row in wait_listed(daemon, logind_ids).items()}
    one, sel1, sel2, last = logind_ids

    logind.clear_calls()
    assert daemon.cli("logoff", ids[one], "--force", "--yes").returncode == 0
    assert logind.called_ids("TerminateSession") == [one]

    logind.clear_calls()
    assert daemon.cli("logoff", ids[sel1], ids[sel2], "--force", "--yes").returncode == 0
    assert sorted(logind.called_ids("TerminateSession")) == sorted([sel1, sel2])

    logind.clear_calls()
    result = daemon.cli("logoff", "--all", "--force", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert logind.called_ids("TerminateSession") == [last]
    assert daemon.sessions() == []
    history = [r for r in daemon.cli_json("audit") if r["action"] == "logoff" and r["caller"] == "root"]
    assert [sorted(r["targets"]) for r in history] == [
        [ids[one]], sorted([ids[sel1], ids[sel2]]), [ids[last]]]


def test_graceful_logoff_warns_on_the_x_display_first(
        daemon_factory: Callable[..., Daemon], logind: MockLogind, screens: Screens,
        make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    xs = screens.xvfb(ana)
    session = logind.add_session(ana, display=xs.display, leader=xs.leader)
    daemon = logind_daemon(daemon_factory, logind)
    sid = wait_listed(daemon, [session])[session]["id"]
    logind.clear_calls()
    started = time.monotonic()
    done = subprocess.Popen([sys.executable, "-m", "polydesk", "logoff", sid, "--grace", "3", "--yes"],
                            env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: "Polydesk: log-off" in helper_windows(Screen(xs.display, str(xs.xauthority))),
                 what="the log-off notice")
        assert logind.calls("TerminateSession") == [], "not before the grace period is over"
        assert done.wait(60) == 0
    finally:
        _stop_proc(done)
    assert time.monotonic() - started >= 3
    assert logind.called_ids("TerminateSession") == [session]


def test_role_rules_are_the_same_as_for_xvnc_sessions(
        daemon_factory: Callable[..., Daemon], logind: MockLogind,
        make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    teacher, boss = make_user("tch", "dashboard"), make_user("boss", "admin")
    lids = {u.name: logind.add_session(u, type="tty", tty=f"tty{n}")
            for n, u in enumerate((ana, bia, boss), start=2)}
    daemon = logind_daemon(daemon_factory, logind)
    ids = {lid: row["id"] for lid, row in wait_listed(daemon, list(lids.values())).items()}
    logind.clear_calls()

    refused = daemon.cli("logoff", ids[lids[bia.name]], "--force", "--yes", user=ana)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert [s["user"] for s in daemon.cli_json("sessions", user=ana)] == [ana.name]
    assert daemon.cli("logoff", ids[lids[boss.name]], "--force", "--yes", user=teacher).returncode == 3
    assert daemon.cli("block", ids[lids[ana.name]], user=ana).returncode == 3
    assert logind.calls("TerminateSession") == [] and logind.calls("LockSession") == []

    own = daemon.cli("logoff", "--force", "--yes", user=ana)  # no id: the caller's own session
    assert own.returncode == 0, own.stdout + own.stderr
    assert logind.called_ids("TerminateSession") == [lids[ana.name]]


def test_block_and_unblock_through_the_daemon(
        daemon_factory: Callable[..., Daemon], logind: MockLogind, screens: Screens,
        make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    xs = screens.xvfb(ana)
    desk = logind.add_session(ana, display=xs.display, leader=xs.leader)
    text = logind.add_session(bia, type="tty", tty="tty3")
    daemon = logind_daemon(daemon_factory, logind)
    ids = {lid: row["id"] for lid, row in wait_listed(daemon, [desk, text]).items()}
    screen = Screen(xs.display, str(xs.xauthority))

    blocked = daemon.cli("block", ids[desk], ids[text], "--message", "Prova em andamento")

    assert blocked.returncode == 1, "the text session cannot be blocked"
    assert "not supported for this session type" in blocked.stdout + blocked.stderr
    assert logind.called_ids("LockSession") == [desk]
    assert helper_windows(screen) == ["Polydesk: blocked"]
    rows = {r["id"]: r for r in daemon.sessions()}
    assert (rows[ids[desk]]["blocked"], rows[ids[text]]["blocked"]) == (True, False)

    assert daemon.cli("unblock", ids[desk]).returncode == 0
    assert logind.called_ids("UnlockSession") == [desk]
    wait_for(lambda: helper_windows(screen) == [], what="the cover to go")

    disconnected = daemon.cli("disconnect", ids[desk])
    assert disconnected.returncode == 1 and "not supported for this session type" in disconnected.stderr


def test_thumbnail_of_an_x11_session_and_the_wayland_placeholder(
        daemon_factory: Callable[..., Daemon], logind: MockLogind, screens: Screens,
        make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    xs = screens.xvfb(ana, colour="#c03020")
    desk = logind.add_session(ana, display=xs.display, leader=xs.leader)
    wayland = logind.add_session(bia, type="wayland", leader=screens.process(bia))
    daemon = logind_daemon(daemon_factory, logind)
    ids = {lid: row["id"] for lid, row in wait_listed(daemon, [desk, wayland]).items()}

    shot = jpeg(daemon, ids[desk])
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    assert shot.headers["x-thumbnail-version"] != "0", "a real capture, not the placeholder"
    image = Image.open(io.BytesIO(shot.content)).convert("RGB")
    assert image.width == 160
    r, g, b = image.getpixel((image.width // 2, image.height // 2))
    assert r > 150 and g < 90 and b < 80, "the session's red root window"

    card = jpeg(daemon, ids[wayland])
    assert card.status_code == 200 and card.headers["x-thumbnail-version"] == "0"
    said = "Wayland session: Wayland lets no other program see its screen"
    assert card.content == placeholder("small", said).jpeg != placeholder("small").jpeg, \
        "the placeholder says why there is no picture"


def test_the_dashboard_shows_both_kinds_in_one_grid(
        daemon_factory: Callable[..., Daemon], logind: MockLogind,
        make_user: Callable[..., TestUser]) -> None:
    from tests.web.webclient import signin

    boss, ana, bia = make_user("boss", "admin"), make_user("ana"), make_user("bia")
    seat = logind.add_session(ana, type="tty", tty="tty2")
    daemon = logind_daemon(daemon_factory, logind)
    own = logon(daemon, bia)
    at_seat = wait_listed(daemon, [seat])[seat]["id"]
    with signin(daemon, boss) as web:
        page = web.get("/")
        listed = web.get("/api/v1/sessions").json()
    assert page.status_code == 200
    assert f'id="card-{own}"' in page.text and f'id="card-{at_seat}"' in page.text
    assert {(s["id"], s["backend"]) for s in listed} == {(own, "xvnc"), (at_seat, "logind")}


def test_a_restarted_daemon_keeps_logind_ids_and_notices_what_ended_meanwhile(
        daemon_factory: Callable[..., Daemon], logind: MockLogind,
        make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    stays, goes = (logind.add_session(u, type="tty", tty=f"tty{n}") for n, u in ((2, ana), (3, bia)))
    daemon = logind_daemon(daemon_factory, logind)
    ids = {lid: row["id"] for lid, row in wait_listed(daemon, [stays, goes]).items()}
    assert daemon.stop() == 0

    logind.remove_session(goes)
    arrived = logind.add_session(bia, type="tty", tty="tty4")
    daemon.start()

    listed = wait_listed(daemon, [stays, arrived])
    assert listed[stays]["id"] == ids[stays]
    assert listed[arrived]["id"] not in ids.values()
    assert goes not in listed
    ended = [r for r in daemon.cli_json("audit") if r["targets"] == [ids[goes]]][-1]
    assert ended["detail"]["reason"] == "logout"


@pytest.mark.parametrize("where", ["no bus", "a bus without logind"])
def test_the_daemon_refuses_logind_where_there_is_none(
        daemon_factory: Callable[..., Daemon], where: str) -> None:
    with private_bus(with_logind=False) as bare:
        address = bare.address if where == "a bus without logind" else "unix:path=/nonexistent/bus"
        daemon = daemon_factory(extra_config=f'logind_bus = "{address}"\n', backends='["xvnc", "logind"]',
                                start=False)
        result = subprocess.run([sys.executable, "-m", "polydesk", "serve"], env=daemon.env(),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    expected = "has no org.freedesktop.login1" if where == "a bus without logind" else "cannot connect"
    assert "logind backend" in result.stderr and expected in result.stderr, result.stderr


def _stop_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
