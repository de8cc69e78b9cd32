"""The built-in Xvnc backend, against real Xvnc servers, real accounts and real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from Xlib import X
from Xlib.error import XError

from polydesk.core.model import BackendError, Session
from polydesk.core.screen import Screen, Server
from polydesk.system import processes
from polydesk.system.x11 import client as x11
from polydesk.system.x11 import xauth, xserver
from tests.backends.sessions import (
    RfbClient,
    Sessions,
    account_of,
    command_of,
    data,
    live_pids,
    typing_reaches_the_shell,
    typing_session,
    windows,
    write_xsession,
)
from tests.harness import await_for
from tests.users import TestUser, display_files

Account = Callable[[str], TestUser]
Rfb = Callable[[str], RfbClient]
Completed = subprocess.CompletedProcess[bytes]

# Two processes that try to outlive the session: one leaves the process tree and the
# session (double fork + setsid), one ignores SIGTERM. Then a focused xterm, then the WM.
ESCAPERS = """\
( setsid sh -c 'echo $$ > "$HOME/escaper.pid"; exec sleep 1000' & )
sh -c 'trap "" TERM; echo $$ > "$HOME/stubborn.pid"; while :; do sleep 1; done' &
xterm -e sh &
exec openbox
"""


def handshake(session: Session, cookie: bytes | None) -> bool:
    return xserver.handshake(str(session.display), cookie or b"", Server())


def cookie_of(session: Session) -> bytes:
    return xauth.read_cookie(Path(data(session, "xauthority")))


def pid_file(user: TestUser, name: str) -> int | None:
    try:
        return int((Path(user.home) / name).read_text())
    except (OSError, ValueError):
        return None


def nothing_left(session: Session, user: TestUser) -> list[str]:
    """Every trace a session could leave behind, named."""
    number = session.backend_data["display_number"]
    traces = [f"pid {pid} {command_of(pid)}" for pid in live_pids(user.uid)]
    traces += display_files(number, user.uid)
    if os.path.lexists(data(session, "session_dir")):
        traces.append(data(session, "session_dir"))
    cgroup = session.backend_data.get("cgroup")
    if cgroup and os.path.exists(cgroup):
        traces.append(str(cgroup))
    return traces


# ---------------------------------------------------------------- start


@pytest.mark.asyncio
async def test_display_opens_with_the_cookie_only(sessions: Sessions, account: Account) -> None:
    user = account("cookie")
    session = await sessions.start(user)
    assert session.display == data(session, "display")
    assert handshake(session, cookie_of(session))
    assert not handshake(session, None)
    assert not handshake(session, b"\0" * 16)
    # Real X clients, as the user: refused without the cookie, served with it.
    refused = await xdpyinfo_as(user, session, "/dev/null")
    assert refused.returncode != 0
    served = await xdpyinfo_as(user, session, data(session, "xauthority"))
    assert served.returncode == 0, served.stderr


async def xdpyinfo_as(user: TestUser, session: Session, xauthority: str) -> Completed:
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": str(session.display), "HOME": user.home,
           "XAUTHORITY": xauthority}
    return await asyncio.to_thread(subprocess.run, ["xdpyinfo"], env=env, user=user.uid, group=user.gid,
                                   capture_output=True, timeout=10, check=False)


@pytest.mark.asyncio
async def test_files_sockets_and_owners(sessions: Sessions, account: Account) -> None:
    user = account("files")
    # A user who got to /tmp/.X11-unix first must not keep it: the backend takes it back.
    os.makedirs("/tmp/.X11-unix", exist_ok=True)
    os.chown("/tmp/.X11-unix", user.uid, user.gid)
    try:
        session = await sessions.start(user)
    finally:
        info = os.stat("/tmp/.X11-unix")
        if info.st_uid != 0:
            os.chown("/tmp/.X11-unix", 0, 0)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o1777)

    rfb = os.stat(data(session, "rfb_socket"))
    assert stat.S_ISSOCK(rfb.st_mode)
    assert (rfb.st_uid, stat.S_IMODE(rfb.st_mode)) == (0, 0o600)  # the daemon's alone
    rfb_dir = os.stat(os.path.dirname(data(session, "rfb_socket")))
    assert (rfb_dir.st_uid, stat.S_IMODE(rfb_dir.st_mode)) == (0, 0o700)
    xauthority = os.stat(data(session, "xauthority"))
    assert (xauthority.st_uid, stat.S_IMODE(xauthority.st_mode)) == (user.uid, 0o600)
    session_dir = os.stat(data(session, "session_dir"))
    assert (session_dir.st_uid, stat.S_IMODE(session_dir.st_mode)) == (0, 0o711)
    xdg = os.stat(data(session, "xdg_runtime_dir"))
    assert (xdg.st_uid, stat.S_IMODE(xdg.st_mode)) == (user.uid, 0o700)


@pytest.mark.asyncio
async def test_xvnc_opens_no_network_port(sessions: Sessions, account: Account) -> None:
    session = await sessions.start(account("tcp"))
    xvnc = psutil.Process(int(session.backend_data["xvnc_pid"]))
    assert xvnc.net_connections(kind="inet") == []
    unix = [c.laddr for c in xvnc.net_connections(kind="unix")]
    assert data(session, "rfb_socket") in unix
    # Both names of its display are its own: none is left for another user to bind.
    number = data(session, "display_number")
    assert f"/tmp/.X11-unix/X{number}" in unix
    assert f"@/tmp/.X11-unix/X{number}" in unix or f"\0/tmp/.X11-unix/X{number}" in unix, unix


@pytest.mark.asyncio
async def test_every_process_runs_as_the_user_in_the_session(sessions: Sessions, account: Account) -> None:
    user = account("asuser")
    session = await sessions.start(user)
    backend = sessions.backends[0]
    await windows(backend, session)
    pids = await backend.processes(session)
    names = {psutil.Process(pid).name() for pid in pids}
    assert {"Xvnc", "openbox", "xterm"} <= names
    for pid in pids:
        process = psutil.Process(pid)
        assert process.uids().real == process.uids().effective == user.uid, command_of(pid)
        assert process.environ()["POLYDESK_SESSION"] == session.backend_data["track_key"]
        assert session.backend_data["track_key"].startswith(f"{session.id}-")
    desktop = psutil.Process(int(session.backend_data["desktop_pid"])).environ()
    assert desktop["DISPLAY"] == session.display
    assert desktop["XAUTHORITY"] == data(session, "xauthority")
    assert desktop["XDG_RUNTIME_DIR"] == data(session, "xdg_runtime_dir")
    assert desktop["HOME"] == user.home and desktop["USER"] == user.name


@pytest.mark.asyncio
@pytest.mark.parametrize(("options", "why"), [
    ({"geometry": "not-a-size"}, "Xvnc did not start"),  # Xvnc exits at once
    ({"start_timeout": 0.0}, "not ready after"),  # Xvnc is killed while starting
    ({"xvnc": "/nonexistent/Xvnc"}, "cannot run"),
])
async def test_a_failed_start_says_why_and_leaves_nothing(sessions: Sessions, account: Account,
                                                          options: dict[str, object], why: str) -> None:
    user = account("fail")
    backend = sessions.backend(**options)
    with pytest.raises(BackendError, match=why):
        await backend.start("failing-start", account_of(user))
    assert live_pids(user.uid) == []
    assert not (sessions.runtime_dir / "sessions" / "failing-start").exists()
    # Xvnc made its lock and socket as the user: none of theirs may be left.
    theirs = [path for path in [*Path("/tmp").glob(".X*-lock"), *Path("/tmp/.X11-unix").iterdir()]
              if path.lstat().st_uid == user.uid]
    assert theirs == []


@pytest.mark.asyncio
async def test_a_session_id_unfit_for_a_path_is_refused(sessions: Sessions, account: Account) -> None:
    with pytest.raises(BackendError, match="session id"):
        await sessions.backend().start("../../etc", account_of(account("badid")))


# ---------------------------------------------------------------- ending


@pytest.mark.asyncio
@pytest.mark.parametrize("tracking", ["auto", "cgroup2", "cgroup1", "marker"])
async def test_end_leaves_nothing_even_escapers(sessions: Sessions, account: Account, tracking: str) -> None:
    user = account("end")
    write_xsession(user, ESCAPERS)
    backend = sessions.backend(tracking=tracking)
    if tracking != "auto":
        assert backend.tracking.mode == tracking
    session = await sessions.start(user, backend)
    await await_for(lambda: pid_file(user, "escaper.pid") and pid_file(user, "stubborn.pid"),
                    what="the escapers to start")
    escaper, stubborn = pid_file(user, "escaper.pid"), pid_file(user, "stubborn.pid")
    assert escaper is not None and stubborn is not None
    assert psutil.Process(escaper).ppid() != int(session.backend_data["desktop_pid"])  # it left the tree
    assert os.getsid(escaper) != os.getsid(int(session.backend_data["desktop_pid"]))  # and the session
    tracked = await backend.processes(session)
    assert escaper in tracked and stubborn in tracked

    started = time.monotonic()
    await backend.end(session, kill_after=1.0)
    took = time.monotonic() - started
    assert nothing_left(session, user) == []
    assert took >= 1.0  # the stubborn one waited out the grace period ...
    assert took < 8.0  # ... and no longer
    assert await backend.processes(session) == []
    await backend.end(session, kill_after=1.0)  # idempotent
    assert nothing_left(session, user) == []


@pytest.mark.asyncio
async def test_ending_one_session_leaves_the_other_alone(sessions: Sessions, account: Account) -> None:
    first, second = account("one"), account("two")
    backend = sessions.backend()
    one, two = await asyncio.gather(sessions.start(first, backend), sessions.start(second, backend))
    assert one.display != two.display  # started together, yet each on its own display
    await windows(backend, two)
    before = sorted(await backend.processes(two))
    await backend.end(one, kill_after=1.0)
    assert nothing_left(one, first) == []
    assert sorted(await backend.processes(two)) == before
    assert handshake(two, cookie_of(two))
    assert os.path.exists(data(two, "rfb_socket"))


@pytest.mark.asyncio
async def test_end_after_xvnc_died_cleans_up(sessions: Sessions, account: Account) -> None:
    user = account("died")
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    os.kill(int(session.backend_data["xvnc_pid"]), signal.SIGKILL)
    await asyncio.wait_for(backend.wait_ended(session), 5)
    await backend.end(session, kill_after=0.5)
    assert nothing_left(session, user) == []


@pytest.mark.asyncio
async def test_desktop_exit_ends_the_session(sessions: Sessions, account: Account) -> None:
    user = account("quit")
    write_xsession(user, "sleep 1\n")  # the user logs out from inside after a second
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    await asyncio.wait_for(backend.wait_ended(session), 10)
    await backend.end(session, kill_after=0.5)
    assert nothing_left(session, user) == []


# ---------------------------------------------------------------- daemon restart


@pytest.mark.asyncio
async def test_a_new_host_adopts_and_watches_a_running_session(sessions: Sessions, account: Account) -> None:
    user = account("adopt")
    first = sessions.backend()
    session = await sessions.start(user, first)
    await first.close()  # the daemon goes away; the session must not notice
    assert handshake(session, cookie_of(session))

    second = sessions.backend()
    assert await second.adopt(session)
    watcher = asyncio.create_task(second.wait_ended(session))
    await asyncio.sleep(0.2)
    assert not watcher.done()
    os.kill(int(session.backend_data["xvnc_pid"]), signal.SIGKILL)
    await asyncio.wait_for(watcher, 5)
    assert not await second.adopt(session)
    await second.end(session, kill_after=0.5)
    assert nothing_left(session, user) == []


@pytest.mark.asyncio
async def test_unblock_works_after_a_daemon_restart(sessions: Sessions, account: Account) -> None:
    user = account("reblock")
    first = sessions.backend()
    session = await sessions.start(user, first)
    await first.block(session, "Blocked before the restart")
    await first.close()
    await await_for(lambda: len(_helper_windows(session)) == 1, 5, "the cover")
    second = sessions.backend()
    assert await second.adopt(session)
    await second.unblock(session)
    assert _helper_windows(session) == []
    assert list((Path(data(session, "session_dir")) / "helpers").iterdir()) == []


@pytest.mark.asyncio
async def test_adopt_refuses_a_reused_pid(sessions: Sessions, account: Account) -> None:
    session = await sessions.start(account("reuse"))
    forged = session.with_(backend_data={**session.backend_data, "xvnc_start": 1})
    assert not await sessions.backends[0].adopt(forged)
    other_boot = session.with_(backend_data={**session.backend_data, "boot_id": "another-boot"})
    assert not await sessions.backends[0].adopt(other_boot)
    assert await sessions.backends[0].adopt(session)


# ---------------------------------------------------------------- viewers, input, windows


@pytest.mark.asyncio
async def test_block_drops_keys_and_unblock_restores_them(sessions: Sessions, account: Account,
                                                           rfb: Rfb) -> None:
    user = account("block")
    backend, session, client = await typing_session(sessions, user, rfb)

    await backend.block(session, "Estação bloqueada")
    assert not await typing_reaches_the_shell(client, user, "during", 1.5)
    await backend.block(session, "Again, blocked")  # idempotent: still one cover
    assert len(list((Path(data(session, "session_dir")) / "helpers").glob("cover-*"))) == 1

    await backend.unblock(session)
    await asyncio.sleep(0.3)
    assert await typing_reaches_the_shell(client, user, "after", 5)
    assert not (Path(user.home) / "during").exists()
    await backend.unblock(session)  # idempotent


@pytest.mark.asyncio
async def test_the_cover_stays_on_top_and_holds_the_input(sessions: Sessions, account: Account) -> None:
    user = account("cover")
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    await windows(backend, session)
    await backend.block(session, "Blocked")
    with x11.connection(Screen(str(session.display), data(session, "xauthority"))) as conn:
        root = conn.screen().root
        # A new window, mapped and raised after the cover, as an app would do.
        window = root.create_window(0, 0, 300, 200, 0, conn.screen().root_depth, override_redirect=True)
        window.map()
        window.raise_window()
        conn.sync()
        deadline = time.monotonic() + 5  # the cover re-raises itself; a loaded machine is slow
        while True:
            top = root.query_tree().children[-1]
            if top.get_wm_class() == (x11.HELPER_CLASS, "Polydesk") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert top.get_wm_class() == (x11.HELPER_CLASS, "Polydesk")
        geometry = top.get_geometry()
        assert (geometry.width, geometry.height) == (1280, 800)
        grab = window.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
        assert grab == X.AlreadyGrabbed
        window.destroy()
        conn.sync()
    await backend.unblock(session)
    await asyncio.sleep(0.3)
    with x11.connection(Screen(str(session.display), data(session, "xauthority"))) as conn:
        classes = [w.get_wm_class() for w in conn.screen().root.query_tree().children]
        assert (x11.HELPER_CLASS, "Polydesk") not in classes


@pytest.mark.asyncio
async def test_disconnect_drops_the_viewer_and_keeps_the_session(sessions: Sessions, account: Account,
                                                                  rfb: Rfb) -> None:
    user = account("disc")
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    client = rfb(data(session, "rfb_socket"))
    assert not client.closed_by_server(0.3)
    before = sorted(await backend.processes(session))
    await backend.disconnect(session)
    assert client.closed_by_server(5)
    assert sorted(await backend.processes(session)) == before
    assert rfb(data(session, "rfb_socket")).name == user.name  # and one can come back


@pytest.mark.asyncio
async def test_close_windows_makes_xterm_exit(sessions: Sessions, account: Account) -> None:
    user = account("close")
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    await windows(backend, session)
    await backend.message(session, "not to be closed", None)
    await asyncio.sleep(1.0)
    xterms = [pid for pid in await backend.processes(session) if psutil.Process(pid).name() == "xterm"]
    assert len(xterms) == 1
    assert await backend.close_windows(session) == 1  # the xterm; not our message window
    await await_for(lambda: not processes.is_running(xterms[0]), 5, "xterm to exit")
    assert await backend.open_windows(session) == 0
    names = {psutil.Process(pid).name() for pid in await backend.processes(session)}
    assert "openbox" in names and "Xvnc" in names


@pytest.mark.asyncio
async def test_messages_stack_and_close_themselves(sessions: Sessions, account: Account) -> None:
    session = await sessions.start(account("msg"))
    backend = sessions.backends[0]
    helpers = Path(data(session, "session_dir")) / "helpers"
    await backend.message(session, "Primeira mensagem: olá!", 2)
    await backend.message(session, "A second message, which stays", None)
    await await_for(lambda: len(_helper_windows(session)) == 2, 10, "two message windows")
    assert len(list(helpers.glob("message-*"))) == 2
    await await_for(lambda: len(_helper_windows(session)) == 1, 10, "the first to close itself")
    assert await backend.open_windows(session) >= 0  # helper windows are never counted
    await backend.end(session, kill_after=0.5)
    assert not helpers.exists()


@pytest.mark.asyncio
async def test_logoff_notice_counts_down(sessions: Sessions, account: Account) -> None:
    session = await sessions.start(account("notice"))
    backend = sessions.backends[0]
    started = time.monotonic()
    await backend.notify_logoff(session, 30, "You will be logged off in 30 seconds.")
    assert time.monotonic() - started < 1.0  # returns at once
    await await_for(lambda: len(_helper_windows(session)) == 1, 10, "the notice")
    first = _screenshot_hash(session)
    await asyncio.sleep(1.5)
    assert _screenshot_hash(session) != first  # the countdown moved


def _helper_windows(session: Session) -> list[int]:
    with x11.connection(Screen(str(session.display), data(session, "xauthority"))) as conn:
        helper = conn.intern_atom(x11.HELPER_PROPERTY)
        found = []
        for window in _all_windows(conn.screen().root):
            try:  # a message closing itself meanwhile takes its window along
                attributes = window.get_attributes()
                prop = window.get_property(helper, X.AnyPropertyType, 0, 1)
            except XError:
                continue
            if prop is not None and attributes.map_state == X.IsViewable:
                found.append(window.id)
        return found


def _all_windows(window):  # type: ignore[no-untyped-def]
    try:
        children = window.query_tree().children
    except XError:
        return
    for child in children:
        yield child
        yield from _all_windows(child)


def _screenshot_hash(session: Session) -> int:
    with x11.connection(Screen(str(session.display), data(session, "xauthority"))) as conn:
        root = conn.screen().root
        return hash(root.get_image(0, 0, 1280, 300, X.ZPixmap, 0xFFFFFFFF).data)


@pytest.mark.asyncio
async def test_idle_time_follows_input(sessions: Sessions, account: Account, rfb: Rfb) -> None:
    session = await sessions.start(account("idle"))
    backend = sessions.backends[0]
    await asyncio.sleep(1.2)
    idle = await backend.idle_seconds(session)
    assert idle is not None and idle >= 1.0
    rfb(data(session, "rfb_socket")).key(0xFFE1)  # Shift
    await asyncio.sleep(0.2)
    after = await backend.idle_seconds(session)
    assert after is not None and after < idle
    await backend.end(session, kill_after=0.5)
    assert await backend.idle_seconds(session) is None
    with pytest.raises(BackendError):
        await backend.block(session, "gone")


# ---------------------------------------------------------------- speed


@pytest.mark.asyncio
async def test_start_is_fast(sessions: Sessions, account: Account) -> None:
    """Request to usable display: the median of five is well under a second."""
    user = account("fast")
    backend = sessions.backend()
    times = []
    for _ in range(5):
        started = time.monotonic()
        session = await sessions.start(user, backend)
        times.append(time.monotonic() - started)
        assert handshake(session, cookie_of(session))
        await backend.end(session, kill_after=0)
    times.sort()
    assert times[2] < 1.0, times
