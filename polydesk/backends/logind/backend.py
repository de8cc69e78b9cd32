"""The logind backend: the sessions this machine already has (seats, display managers, SSH).

systemd-logind knows every login session: a station of a multiseat lab (a seat),
a GDM or LightDM desktop, a getty, an SSH or xrdp connection. This backend lists them
over D-Bus (``dbus``), follows ``SessionNew`` / ``SessionRemoved`` live and
acts on them:

- log off: a countdown notice (on the session's X display, else on its terminal),
  a polite close of its windows, then ``TerminateSession``; ``KillSession`` with
  SIGKILL if it is still there ``kill_after`` seconds later;
- block: ``LockSession`` (the desktop's own locker) plus Polydesk's cover window on
  the X display; a Wayland session only gets ``LockSession``, a text one nothing;
- message: a window on the X display, else a line on the session's terminal;
- disconnect: only an SSH session (its connection is closed; what ignores SIGHUP,
  such as tmux, keeps running); every other kind says it is not supported;
- thumbnails: the X display and cookie of an X11 session, found in the environment of
  its leader (or of its other processes: ``local``); Wayland and text sessions
  have no picture, and the placeholder says why.

Files: ``<runtime_dir>/logind/<id>-<start>/`` (root, 0700) holds the daemon's copy of
the session's X cookie and the records of its helper windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from polydesk.backends import apps as shared_apps
from polydesk.backends.base import Discovered, Recovered, Started
from polydesk.backends.helpers import helper_language, helpers, on_screen, show_helper, stop_helpers
from polydesk.backends.logind import apps as session_apps
from polydesk.backends.logind.dbus import Login1, Login1Error, SessionInfo
from polydesk.backends.logind.follow import Follower, translated
from polydesk.backends.logind.local import comm, find_screen, session_pids, write_terminal
from polydesk.backends.logind.sessions import SCREEN_TTL, Ref, describe
from polydesk.core.apps import App
from polydesk.core.model import Account, BackendError, EndReason, Session
from polydesk.core.screen import Endpoint, Screen
from polydesk.system import processes as procs
from polydesk.system.children import Children
from polydesk.system.x11 import apps as xapps
from polydesk.system.x11 import client as x11
from polydesk.system.x11 import xserver

log = logging.getLogger(__name__)

SSH_SERVICES = frozenset({"sshd"})
SSH_LEADERS = frozenset({"sshd", "sshd-session"})  # OpenSSH >= 9.8 runs "sshd-session"


class LogindBackend:
    """The SessionBackend over systemd-logind: sessions started by the OS, not by Polydesk."""

    name = "logind"

    def __init__(self, runtime_dir: Path, bus: str = "system") -> None:
        self.runtime_dir = Path(runtime_dir)
        self._follow = Follower(Login1(bus), procs.boot_id())
        self.login1 = self._follow.login1
        self._children = Children()

    # ------------------------------------------------------------ finding sessions (``follow``)

    async def open(self) -> None:
        await self._follow.open()

    async def discover(self, found: Callable[[Discovered], Awaitable[None]]) -> None:
        await self._follow.discover(found)

    # ------------------------------------------------------------ the SessionBackend protocol

    async def start(self, session_id: str, account: Account) -> Started:
        raise BackendError("logind sessions are started by the system (a display manager, SSH, a "
                        "console log-in), not by Polydesk")

    async def recover(self) -> list[Recovered]:
        return []  # logind itself lists its sessions again: discovery re-adds them

    async def adopt(self, session: Session) -> bool:
        await self.open()
        try:
            return await self._follow.current(Ref.of(session)) is not None
        except BackendError:
            return False

    async def wait_ended(self, session: Session) -> EndReason:
        ref = Ref.of(session)
        while True:
            live = self._follow.live.get(ref.logind_id)
            if live is not None and live.key == ref.key:
                await live.ended.wait()
                return EndReason.LOGOUT
            try:
                if await self._follow.current(ref) is None:
                    return EndReason.LOGOUT
            except BackendError as exc:  # the bus is unreachable: an unknown end is not an end
                log.warning("cannot follow logind session %s: %s", ref.logind_id, exc)
                await asyncio.sleep(5)

    async def processes(self, session: Session) -> list[int]:
        ref = Ref.of(session)
        live = self._follow.live.get(ref.logind_id)
        leader = live.info.leader if live else int(session.backend_data.get("leader") or 0)
        return await asyncio.to_thread(session_pids, ref.logind_id, leader)

    async def end(self, session: Session, kill_after: float) -> None:
        """Idempotent: the helper windows go, then the session through logind, then our files."""
        ref = Ref.of(session)
        folder = self._dir(ref)
        await asyncio.to_thread(stop_helpers, folder)
        if await self._follow.current(ref) is not None:
            try:
                await self.login1.terminate(ref.logind_id)
            except Login1Error as exc:
                if not exc.gone:
                    raise BackendError(f"logind could not terminate session {ref.logind_id}: {exc}") from exc
            if not await self._gone(ref, kill_after, closing_counts=False):
                # systemd gives a scope 90 s to stop by default; our kill_after is the rule.
                with contextlib.suppress(Login1Error):
                    await self.login1.kill(ref.logind_id, signal.SIGKILL)
                if not await self._gone(ref, 5.0, closing_counts=True):
                    raise BackendError(f"logind session {ref.logind_id} is still there after "
                                    "TerminateSession and KillSession")
        await asyncio.to_thread(shutil.rmtree, folder, True)
        self._children.collect()

    async def _gone(self, ref: Ref, seconds: float, closing_counts: bool) -> bool:
        """Wait up to ``seconds`` for SessionRemoved; look at the state now and then, since
        logind signals no change of State (a session may linger in "closing")."""
        deadline = time.monotonic() + seconds
        while True:
            live = self._follow.live.get(ref.logind_id)
            if live is None or live.key != ref.key:
                return True
            try:
                info = await self.login1.session(ref.path)
            except Login1Error:
                info = live.info
            if info is None or (closing_counts and info.state == "closing"):
                self._follow.ended(ref.logind_id)
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.ended.wait(), min(left, 0.5))

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        ref = Ref.of(session)
        screen = await self._screen(session)
        if screen is not None:
            await asyncio.to_thread(stop_helpers, self._dir(ref), "notice")
            await self._helper(ref, screen, "notice", ["--text", text, "--seconds", str(seconds)],
                               helper_language(session))
            return
        await self._to_terminal(session, f"{text} ({seconds} s)")

    async def withdraw_logoff_notice(self, session: Session) -> None:
        # a terminal's line cannot be taken back; a window can
        await asyncio.to_thread(stop_helpers, self._dir(Ref.of(session)), "notice")

    async def close_windows(self, session: Session) -> int:
        screen = await self._screen(session)
        return 0 if screen is None else await on_screen(x11.close_windows, screen, session.id)

    async def open_windows(self, session: Session) -> int:
        screen = await self._screen(session)
        return 0 if screen is None else await on_screen(x11.open_windows, screen, session.id)

    async def disconnect(self, session: Session) -> None:
        """Only an SSH session has a connection to drop: its leader is sshd's process for it."""
        ref = Ref.of(session)
        info = await self._follow.current(ref)
        if info is None:
            raise BackendError(f"logind session {ref.logind_id} has ended")
        if not (info.remote and info.service in SSH_SERVICES):
            raise BackendError(f"disconnect is not supported for this session type ({describe(info)}): "
                            "only SSH sessions can be disconnected; log it off instead")
        leader = info.leader
        if leader <= 1 or comm(leader) not in SSH_LEADERS:
            raise BackendError(f"disconnect is not supported for this session: its leader (pid {leader}) "
                            "is not an sshd process")
        procs.send([leader], signal.SIGTERM)

    async def block(self, session: Session, message: str) -> None:
        ref = Ref.of(session)
        info = await self._follow.current(ref)
        if info is None:
            raise BackendError(f"logind session {ref.logind_id} has ended")
        screen = await self._screen(session)
        if screen is None and info.type != "wayland":
            raise BackendError(f"block is not supported for this session type ({describe(info)}): "
                            f"{self._why(session) or 'no screen to cover'}")
        await translated(self.login1.lock(ref.logind_id))
        if screen is None:
            return  # Wayland: the compositor's own lock screen is all there is
        await asyncio.to_thread(stop_helpers, self._dir(ref), "cover")
        try:
            await self._helper(ref, screen, "cover", ["--message", message], helper_language(session),
                               wait_ready=True)
        except BackendError:
            with contextlib.suppress(Login1Error):
                await self.login1.unlock(ref.logind_id)
            raise

    async def restore_block(self, session: Session) -> list[str]:
        """The cover, if something closed it; the desktop's own lock is logind's to keep."""
        ref = Ref.of(session)
        screen = await self._screen(session)
        if screen is None:
            return []
        if await asyncio.to_thread(helpers, self._dir(ref), "cover"):
            return []
        await self._helper(ref, screen, "cover", ["--message", session.block_message or ""],
                           helper_language(session), wait_ready=True)
        return ["the cover window was closed"]

    async def unblock(self, session: Session) -> None:
        ref = Ref.of(session)
        await asyncio.to_thread(stop_helpers, self._dir(ref), "cover")
        try:
            await self.login1.unlock(ref.logind_id)
        except Login1Error as exc:
            if not exc.gone:
                raise BackendError(f"logind: {exc}") from exc
        self._children.collect()

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        ref = Ref.of(session)
        screen = await self._screen(session)
        if screen is None:
            await self._to_terminal(session, text)
            return
        shown = await asyncio.to_thread(lambda: len(helpers(self._dir(ref), "message")))
        args = ["--text", text, "--index", str(shown)]
        if timeout:
            args += ["--timeout", str(timeout)]
        await self._helper(ref, screen, "message", args, helper_language(session))

    async def idle_seconds(self, session: Session) -> float | None:
        try:
            info = await self._follow.current(Ref.of(session))
        except BackendError:
            return None
        if info is None:
            return None
        screen = await self._screen(session)
        if screen is not None:
            with contextlib.suppress(BackendError):
                return await on_screen(xserver.idle_ms, screen, session.id) / 1000
        if not info.idle_hint:
            return 0.0
        if info.idle_since_us <= 0:
            return None
        return max(0.0, time.time() - info.idle_since_us / 1e6)

    def screen(self, session: Session) -> Screen | None:
        """Synchronous (thumbnail requests ask it often): cached for SCREEN_TTL seconds."""
        try:
            ref = Ref.of(session)
        except BackendError:
            return None
        live = self._follow.live.get(ref.logind_id)
        if live is None or live.key != ref.key:
            return None
        now = time.monotonic()
        if now - live.screen_at >= SCREEN_TTL:
            live.screen, live.screen_why = find_screen(live.info, self._dir(ref))
            live.screen_at = now
        return live.screen

    def screen_unavailable_reason(self, session: Session) -> str | None:
        """Why ``screen`` is None, in words for the Dashboard's placeholder; None when it is not."""
        if self.screen(session) is not None:
            return None
        return self._why(session) or "the session has ended"

    def rfb_socket(self, session: Session) -> Endpoint | None:
        return None  # stations of logind sessions are their own seats or remote clients

    # ------------------------------------------------------------ applications (apps.py)

    async def launch(self, session: Session, account: Account, argv: list[str]) -> int:
        ref, info, screen = await self._x11(session)
        pid = await asyncio.to_thread(session_apps.launch, info, account, screen.display, argv,
                                      self._dir(ref), self._children.own)
        self._children.watch(pid)
        return pid

    async def apps(self, session: Session) -> list[App]:
        _, _, screen = await self._x11(session)
        windows = await on_screen(xapps.list_windows, screen, session.id)
        return await asyncio.to_thread(shared_apps.with_start_times, windows)

    async def close_app(self, session: Session, pid: int, start: int | None, wait: float,
                        kill_after: float) -> str:
        ref, info, screen = await self._x11(session)
        closed = await asyncio.to_thread(shared_apps.close, session.id, info.uid,
                                         lambda: session_pids(ref.logind_id, info.leader), screen, pid,
                                         start, wait, kill_after)
        self._children.collect()
        return closed.how

    async def _x11(self, session: Session) -> tuple[Ref, SessionInfo, Screen]:
        """The session, as logind has it now, and its X display; else BackendError saying why not."""
        ref = Ref.of(session)
        info = await self._follow.current(ref)
        if info is None:
            raise BackendError(f"logind session {ref.logind_id} has ended")
        screen = await self._screen(session)
        if screen is None:
            raise BackendError(f"session {session.id} has no X display Polydesk can reach: "
                               f"{self._why(session) or describe(info)}")
        return ref, info, screen

    async def close(self) -> None:
        await self._follow.close()
        # Still running on purpose (a cover stays while the daemon restarts): parked, not dropped.
        self._children.close()

    # ------------------------------------------------------------ helpers

    def _dir(self, ref: Ref) -> Path:
        return self.runtime_dir / "logind" / ref.dirname

    def _why(self, session: Session) -> str | None:
        with contextlib.suppress(BackendError):
            live = self._follow.live.get(Ref.of(session).logind_id)
            if live is not None:
                return live.screen_why
        return None

    async def _screen(self, session: Session) -> Screen | None:
        return await asyncio.to_thread(self.screen, session)

    async def _to_terminal(self, session: Session, text: str) -> None:
        ref = Ref.of(session)
        info = await self._follow.current(ref)
        if info is None:
            raise BackendError(f"logind session {ref.logind_id} has ended")
        # A graphical session's VT shows graphics: text written there would be shown to nobody.
        if info.type != "tty" or not info.tty:
            raise BackendError(f"messages are not supported for this session type ({describe(info)}): "
                            f"{self._why(session) or 'no X display and no terminal'}")
        try:
            await asyncio.to_thread(write_terminal, info.tty, text)
        except OSError as exc:
            raise BackendError(f"cannot write to /dev/{info.tty}: {exc.strerror or exc}") from exc

    async def _helper(self, ref: Ref, screen: Screen, kind: str, args: list[str], language: str,
                      wait_ready: bool = False) -> None:
        await show_helper(self._dir(ref), screen, kind, args, language, self._children,
                          f"logind session {ref.logind_id}", wait_ready)
