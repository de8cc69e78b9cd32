"""The built-in session backend: one TigerVNC ``Xvnc`` and one desktop per session.

The parts, each its own module: ``record`` (what is kept about a session: Session.backend_data
and ``session.json``), ``launch`` (its files, Xvnc, the desktop), ``display`` (the display's
names and files, the RFB socket), ``watch`` (until Xvnc exits), ``end`` (every process
and file gone). The helper windows are ``backends.helpers``; the children the daemon
started itself are reaped by ``system.children``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from polydesk.backends import apps as shared_apps
from polydesk.backends.base import Recovered, Started
from polydesk.backends.helpers import helper_language, helpers, on_screen, show_helper, stop_helpers
from polydesk.backends.xvnc import apps as session_apps
from polydesk.backends.xvnc import watch
from polydesk.backends.xvnc.display import make_dir
from polydesk.backends.xvnc.end import end_session
from polydesk.backends.xvnc.launch import DEFAULT_DESKTOP, Launcher
from polydesk.backends.xvnc.record import Handle, read_records
from polydesk.core.apps import App
from polydesk.core.model import Account, BackendError, EndReason, Session
from polydesk.core.screen import Endpoint, Screen
from polydesk.system.cgroups import Limits
from polydesk.system.children import Children
from polydesk.system.tracking import Tracker, Tracking, TrackingError, choose
from polydesk.system.x11 import apps as xapps
from polydesk.system.x11 import client as x11
from polydesk.system.x11 import xserver

T = TypeVar("T")
BLOCK_SETTINGS = ("AcceptKeyEvents", "AcceptPointerEvents", "AcceptCutText")


class XvncBackend:
    """The SessionBackend that runs sessions in TigerVNC Xvnc servers on this machine."""

    name = "xvnc"

    def __init__(
        self,
        runtime_dir: Path,
        desktop: Sequence[str] | None = None,
        geometry: str = "1280x800",
        depth: int = 24,
        first_display: int = 10,
        tracking: str = "auto",
        xvnc: str = "Xvnc",
        start_timeout: float = 10.0,
        limits: Limits | None = None,
    ) -> None:
        if depth not in (24, 32):
            raise ValueError(f"depth must be 24 or 32 (the helper windows draw 32-bit pixels), not {depth}")
        self.runtime_dir = Path(runtime_dir)
        try:
            self.tracking = choose(tracking, limits=limits)  # limits: each session's cgroups
        except TrackingError as exc:
            raise BackendError(f"cannot track session processes: {exc}") from exc
        self._children = Children()
        self._launcher = Launcher(self.runtime_dir, desktop or DEFAULT_DESKTOP, geometry, depth,
                                  first_display, xvnc, start_timeout, self.tracking, self._children)

    # ------------------------------------------------------------ start, find again, watch

    async def start(self, session_id: str, account: Account) -> Started:
        work = asyncio.ensure_future(asyncio.to_thread(self._launcher.start, session_id, account))
        try:
            handle = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._abandon)  # the thread finishes anyway: end what it made
            raise
        except (OSError, ValueError) as exc:  # a bad session id, a full disk, a missing binary
            raise BackendError(f"cannot start session {session_id} for {account.name}: {exc}") from exc
        for pid in (handle.xvnc_pid, handle.desktop_pid):
            if pid is not None:
                self._children.watch(pid)
        return Started(display=handle.display, data=handle.to_data())

    def _abandon(self, work: asyncio.Future[Handle]) -> None:
        if not work.cancelled() and work.exception() is None:
            threading.Thread(target=end_session, args=(work.result(), 0.0, self._children.reap),
                             daemon=True).start()

    async def recover(self) -> list[Recovered]:
        return await asyncio.to_thread(self._recover)

    def _recover(self) -> list[Recovered]:
        return [Recovered(handle.session_id, handle.user, Started(handle.display, handle.to_data()),
                          logon_time)
                for handle, logon_time in read_records(self.runtime_dir) if handle.xvnc_running()]

    async def adopt(self, session: Session) -> bool:
        handle = Handle.from_session(session)
        running = await asyncio.to_thread(handle.xvnc_running)
        if running:  # started by a version that left the RFB socket's directory the user's
            await asyncio.to_thread(make_dir, Path(handle.rfb_socket).parent, 0o700)
        return running

    async def wait_ended(self, session: Session) -> EndReason:
        """Return when Xvnc exits; stop it when the desktop exits first (``watch``)."""
        try:
            return await watch.wait_ended(Handle.from_session(session))
        finally:
            self._children.collect()

    async def close(self) -> None:
        """Stop watching; every session (and helper window) keeps running."""
        self._children.close()

    # ------------------------------------------------------------ ending

    async def processes(self, session: Session) -> list[int]:
        handle = Handle.from_session(session)
        return await asyncio.to_thread(lambda: handle.tracker().pids())

    async def end(self, session: Session, kill_after: float) -> None:
        handle = Handle.from_session(session)
        try:
            await asyncio.to_thread(end_session, handle, kill_after, self._children.reap)
        except OSError as exc:
            raise BackendError(f"ending session {session.id}: {exc}") from exc
        finally:
            self._children.collect()

    # ------------------------------------------------------------ windows and input

    async def close_windows(self, session: Session) -> int:
        return await _x(x11.close_windows, self._live(session))

    async def open_windows(self, session: Session) -> int:
        return await _x(x11.open_windows, self._live(session))

    async def idle_seconds(self, session: Session) -> float | None:
        handle = Handle.from_session(session)
        try:
            return await _x(xserver.idle_ms, handle) / 1000
        except BackendError:
            return None

    async def disconnect(self, session: Session) -> None:
        await _x(xserver.disconnect_viewers, self._live(session))

    async def block(self, session: Session, message: str) -> None:
        handle = self._live(session)
        await _x(_block_input, handle)
        await asyncio.to_thread(stop_helpers, handle.dir, "cover")
        try:
            await self._helper(handle, "cover", ["--message", message], helper_language(session),
                               wait_ready=True)
        except Exception:
            if not session.blocked:  # all or nothing: input back on (a re-block keeps it off)
                with contextlib.suppress(BackendError):
                    await _x(_allow_input, handle)
            raise

    async def unblock(self, session: Session) -> None:
        handle = self._live(session)
        await asyncio.to_thread(stop_helpers, handle.dir, "cover")
        await _x(_allow_input, handle)

    async def restore_block(self, session: Session) -> list[str]:
        """Put back whatever undid the block since the last look; say what it was.

        Any X client of the session (a program the user started before the block, over
        SSH, from cron) can turn Xvnc's input settings back on or kill the cover window.
        """
        handle = self._live(session)
        undone = []
        values = await _x(lambda screen: xserver.vnc_params(screen, list(BLOCK_SETTINGS)), handle)
        changed = sorted(name for name, value in values.items() if value != "0")
        if changed:
            await _x(_block_input, handle)
            undone.append("Xvnc accepted input again (" + ", ".join(changed) + ")")
        if not await asyncio.to_thread(helpers, handle.dir, "cover"):
            message = session.block_message or ""
            await self._helper(handle, "cover", ["--message", message], helper_language(session),
                               wait_ready=True)
            undone.append("the cover window was closed")
        return undone

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        handle = self._live(session)
        await asyncio.to_thread(stop_helpers, handle.dir, "notice")
        await self._helper(handle, "notice", ["--text", text, "--seconds", str(seconds)],
                           helper_language(session))

    async def withdraw_logoff_notice(self, session: Session) -> None:
        await asyncio.to_thread(stop_helpers, self._live(session).dir, "notice")

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        handle = self._live(session)
        shown = await asyncio.to_thread(lambda: len(helpers(handle.dir, "message")))
        args = ["--text", text, "--index", str(shown)]
        if timeout:
            args += ["--timeout", str(timeout)]
        await self._helper(handle, "message", args, helper_language(session))

    # ------------------------------------------------------------ applications (apps.py)

    async def launch(self, session: Session, account: Account, argv: list[str]) -> int:
        handle = self._live(session)
        tracker = self._tracker(handle)
        pid = await asyncio.to_thread(session_apps.launch, handle, account, argv, tracker, self._children.own)
        self._children.watch(pid)
        return pid

    async def apps(self, session: Session) -> list[App]:
        handle = self._live(session)
        windows = await _x(xapps.list_windows, handle)
        return await asyncio.to_thread(shared_apps.with_start_times, windows)

    async def close_app(self, session: Session, pid: int, start: int | None, wait: float,
                        kill_after: float) -> str:
        handle = self._live(session)
        tracker = self._tracker(handle)
        closed = await asyncio.to_thread(shared_apps.close, handle.session_id, handle.uid, tracker.pids,
                                         handle.screen, pid, start, wait, kill_after)
        self._children.collect()
        return closed.how

    def _tracker(self, handle: Handle) -> Tracker:
        """The session's tracking, with the limits new processes join where it is this
        backend's own mode (a session of an earlier daemon with another mode: its own)."""
        if Tracking.from_data(handle.to_data()) == self.tracking:
            return self.tracking.tracker(handle.track_key or handle.session_id, handle.leaders())
        return handle.tracker()

    def screen(self, session: Session) -> Screen | None:
        try:
            handle = Handle.from_session(session)
        except BackendError:
            return None
        return handle.screen if handle.display else None

    def screen_unavailable_reason(self, session: Session) -> str | None:
        return None  # an Xvnc session without a screen has ended: the placeholder says enough

    def rfb_socket(self, session: Session) -> Endpoint | None:
        try:
            handle = Handle.from_session(session)
        except BackendError:
            return None
        return Endpoint(handle.rfb_socket, handle.xvnc)

    def _live(self, session: Session) -> Handle:
        handle = Handle.from_session(session)
        if not handle.xvnc_running():
            raise BackendError(f"session {session.id}: its Xvnc is not running")
        return handle

    async def _helper(self, handle: Handle, kind: str, args: list[str], language: str,
                      wait_ready: bool = False) -> None:
        """Start a helper window process (root, the session's cookie, its own session)."""
        await show_helper(handle.dir, handle.screen, kind, args, language, self._children,
                          f"session {handle.session_id}", wait_ready)


def _block_input(screen: Screen) -> None:
    """Xvnc stops taking key, pointer and clipboard input from its viewers."""
    xserver.set_vnc_params(screen, dict.fromkeys(BLOCK_SETTINGS, 0))


def _allow_input(screen: Screen) -> None:
    xserver.set_vnc_params(screen, dict.fromkeys(BLOCK_SETTINGS, 1))


async def _x(function: Callable[[Screen], T], handle: Handle) -> T:
    return await on_screen(function, handle.screen, handle.session_id)
