"""An in-memory SessionBackend for fast unit tests of the manager and policy.

Like httpx's MockTransport: shipped beside the real backend, and it records what
was asked of it so tests can assert on calls. Every behaviour it shows is
also proven against the real Xvnc backend.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from polydesk.backends.base import Recovered, Started
from polydesk.core.apps import App
from polydesk.core.model import Account, BackendError, EndReason, Session
from polydesk.core.screen import Endpoint, Screen


@dataclass
class FakeDesktop:
    account: Account
    display: str
    pids: list[int]
    blocked_with: str | None = None
    messages: list[str] = field(default_factory=list)
    viewers: int = 1
    notices: list[int] = field(default_factory=list)
    windows: int = 2
    undone: list[str] = field(default_factory=list)  # what undid the block, not yet put back
    launched: list[list[str]] = field(default_factory=list)  # argv of every launch, in order
    apps: list[App] = field(default_factory=list)  # one per launch, closed ones taken away
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.desktops: dict[str, FakeDesktop] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_on: set[tuple[str, str]] = set()  # (method, session id) that raise BackendError
        self.idle: dict[str, float] = {}  # seconds without input, per session (default 0)
        self.rfb: dict[str, Endpoint] = {}  # the RFB servers tests give sessions (default none)
        self._next_pid = 10_000

    def _record(self, method: str, session_id: str) -> FakeDesktop:
        self.calls.append((method, session_id))
        if (method, session_id) in self.fail_on:
            raise BackendError(f"fake failure in {method} of session {session_id}")
        desktop = self.desktops.get(session_id)
        if desktop is None or desktop.ended.is_set():
            raise BackendError(f"session {session_id} is not running")
        return desktop

    def crash(self, session_id: str) -> None:
        """Stand-in for kill -9 of the display server."""
        self.desktops[session_id].pids.clear()
        self.desktops[session_id].ended.set()

    async def start(self, session_id: str, account: Account) -> Started:
        self.calls.append(("start", session_id))
        if ("start", session_id) in self.fail_on:
            raise BackendError("fake start failure")
        self._next_pid += 3
        display = f":{len(self.desktops) + 10}"
        pids = [self._next_pid, self._next_pid + 1, self._next_pid + 2]
        self.desktops[session_id] = FakeDesktop(account, display, pids)
        return Started(display, {"pids": pids})

    async def recover(self) -> list[Recovered]:
        return [Recovered(sid, d.account.name, Started(d.display, {"pids": d.pids}), 0.0)
                for sid, d in self.desktops.items() if not d.ended.is_set()]

    async def adopt(self, session: Session) -> bool:
        desktop = self.desktops.get(session.id)
        return desktop is not None and not desktop.ended.is_set()

    async def wait_ended(self, session: Session) -> EndReason:
        await self.desktops[session.id].ended.wait()
        return EndReason.CRASHED

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        self._record("notify_logoff", session.id).notices.append(seconds)

    async def withdraw_logoff_notice(self, session: Session) -> None:
        self._record("withdraw_logoff_notice", session.id).notices.append(0)

    async def close_windows(self, session: Session) -> int:
        desktop = self._record("close_windows", session.id)
        asked, desktop.windows = desktop.windows, 0
        return asked

    async def open_windows(self, session: Session) -> int:
        desktop = self.desktops.get(session.id)
        return desktop.windows if desktop else 0

    async def processes(self, session: Session) -> list[int]:
        desktop = self.desktops.get(session.id)
        return list(desktop.pids) if desktop else []

    async def end(self, session: Session, kill_after: float) -> None:
        self.calls.append(("end", session.id))
        if ("end", session.id) in self.fail_on:
            raise BackendError("fake end failure")
        desktop = self.desktops.get(session.id)
        if desktop is not None:
            desktop.pids.clear()
            desktop.ended.set()

    async def disconnect(self, session: Session) -> None:
        self._record("disconnect", session.id).viewers = 0

    async def block(self, session: Session, message: str) -> None:
        self._record("block", session.id).blocked_with = message

    async def unblock(self, session: Session) -> None:
        self._record("unblock", session.id).blocked_with = None

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        self._record("message", session.id).messages.append(text)

    def undo_block(self, session_id: str, what: str) -> None:
        """Stand-in for a program of the user's turning input back on, or killing the cover."""
        self.desktops[session_id].undone.append(what)

    async def restore_block(self, session: Session) -> list[str]:
        desktop = self.desktops.get(session.id)  # not recorded in calls: it runs twice a second
        if desktop is None or desktop.ended.is_set():
            raise BackendError(f"session {session.id} is not running")
        undone, desktop.undone = desktop.undone, []
        return undone

    async def idle_seconds(self, session: Session) -> float | None:
        return self.idle.get(session.id, 0.0) if session.id in self.desktops else None

    async def launch(self, session: Session, account: Account, argv: list[str]) -> int:
        desktop = self._record("launch", session.id)
        if account.uid != desktop.account.uid:
            raise BackendError(f"session {session.id} is not {account.name}'s")
        self._next_pid += 1
        desktop.launched.append(list(argv))
        name = argv[-1] if argv[0] == "xdg-open" else argv[0].rsplit("/", 1)[-1]
        desktop.apps.append(App(window=self._next_pid, title=" ".join(argv), name=name, wm_class=name,
                                pid=self._next_pid, pid_source="server", start=1, started_at=0.0))
        return self._next_pid

    async def apps(self, session: Session) -> list[App]:
        return list(self._record("apps", session.id).apps)

    async def close_app(self, session: Session, pid: int, start: int | None, wait: float,
                        kill_after: float) -> str:
        desktop = self._record("close_app", session.id)
        app = next((a for a in desktop.apps if a.pid == pid and start in (None, a.start)), None)
        if app is None:
            raise BackendError(f"session {session.id}: process {pid} is not a process of the session: "
                               "nothing was signalled")
        desktop.apps.remove(app)
        return "closed"

    def screen(self, session: Session) -> Screen | None:
        return None  # no pixels: interfaces show a placeholder

    def screen_unavailable_reason(self, session: Session) -> str | None:
        return None  # the placeholder's own words

    def rfb_socket(self, session: Session) -> Endpoint | None:
        return self.rfb.get(session.id)

    async def close(self) -> None:
        self.calls.append(("close", ""))
