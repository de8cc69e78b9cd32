"""The SessionBackend protocol: where sessions live. The manager knows backends only through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from polydesk.core.apps import App
from polydesk.core.model import Account, EndReason, Session
from polydesk.core.screen import Endpoint, Screen


@dataclass(frozen=True)
class Started:
    """What a backend reports once a session's display is usable."""

    display: str | None
    # Opaque to everyone but the backend; JSON-serialisable. The store keeps it and
    # the manager hands it back (as Session.backend_data) on every later call,
    # including after a daemon restart, so the backend can re-adopt the session.
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recovered:
    """A live session found by the backend itself, for rebuilding a lost state database."""

    session_id: str
    user: str
    started: Started
    logon_time: float


class SessionBackend(Protocol):
    """One place sessions run (the built-in Xvnc backend, logind, a fake for tests).

    Every method but ``start`` receives the session as the store knows it.
    Methods that end or change a session are idempotent: the manager may call
    them again after a crash.
    """

    name: str

    async def start(self, session_id: str, account: Account) -> Started:
        """Start a desktop for ``account``; return once its display accepts clients."""
        ...

    async def adopt(self, session: Session) -> bool:
        """After a daemon restart: True if the session still runs (and is now watched)."""
        ...

    async def recover(self) -> list[Recovered]:
        """Every session of this backend still running, found without the state database."""
        ...

    async def wait_ended(self, session: Session) -> EndReason:
        """Return when the session's display server has exited, saying why: LOGOUT when
        the user's desktop ended first (the backend then stops the display), else CRASHED."""
        ...

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        """Show the log-off warning with a countdown; return at once."""
        ...

    async def withdraw_logoff_notice(self, session: Session) -> None:
        """Take the log-off warning away: the log-off was cancelled."""
        ...

    async def close_windows(self, session: Session) -> int:
        """Ask every top-level window to close (WM_DELETE_WINDOW); return how many were asked."""
        ...

    async def open_windows(self, session: Session) -> int:
        """How many top-level application windows are still open."""
        ...

    async def processes(self, session: Session) -> list[int]:
        """The pids of every process of the session still running."""
        ...

    async def end(self, session: Session, kill_after: float) -> None:
        """SIGTERM every process, SIGKILL what is left after ``kill_after`` seconds,
        stop the display server and remove every file the session had."""
        ...

    async def disconnect(self, session: Session) -> None:
        """Drop every viewer; the session keeps running."""
        ...

    async def block(self, session: Session, message: str) -> None:
        """Ignore viewer input at the display server and cover every screen with ``message``.
        All or nothing: a BackendError means the session is as it was (what was done is put back)."""
        ...

    async def unblock(self, session: Session) -> None:
        """Undo block; all or nothing, as block."""
        ...

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        """Show ``text`` in a window the user can close; it closes itself after ``timeout`` s."""
        ...

    async def idle_seconds(self, session: Session) -> float | None:
        """Seconds since the last input, or None when the backend cannot tell."""
        ...

    def screen(self, session: Session) -> Screen | None:
        """The session's X display for thumbnails, or None when it has none we can read."""
        ...

    def screen_unavailable_reason(self, session: Session) -> str | None:
        """Why ``screen`` is None, in words for the Dashboard's placeholder (logind: a Wayland
        session); None when there is a screen or no better word than the placeholder's own."""
        ...

    def rfb_socket(self, session: Session) -> Endpoint | None:
        """The Unix socket of the session's RFB (VNC) server, for the browser station bridge."""
        ...

    async def restore_block(self, session: Session) -> list[str]:
        """While the session is blocked: put back whatever undid the block since the last
        call (an input setting turned on again, the cover closed); say what it was."""
        ...

    async def launch(self, session: Session, account: Account, argv: list[str]) -> int:
        """Start ``argv`` as it is (never through a shell) as ``account``, the session's user,
        with their groups, the session's environment and inside its tracking; its pid.
        BackendError (the reason) where the backend cannot reach the session's display."""
        ...

    async def apps(self, session: Session) -> list[App]:
        """The application windows of the session, with the pid the display server knows."""
        ...

    async def close_app(self, session: Session, pid: int, start: int | None, wait: float,
                        kill_after: float) -> str:
        """Close the application ``pid`` (started at ``start``): its windows asked, then SIGTERM
        after ``wait`` s, SIGKILL after ``kill_after`` more; "closed", "terminated" or "killed".
        Nothing is signalled (BackendError) unless it is a process of the session: same uid,
        inside its tracking, same start time."""
        ...

    async def close(self) -> None:
        """Stop watching; leave every session running (daemon shutdown)."""
        ...


@dataclass(frozen=True)
class Discovered:
    """A session that something else started (the OS: a display manager, SSH, a getty),
    as a discovering backend reports it to the manager."""

    # Names the session for good: unique on this machine and stable across daemon restarts
    # (logind: boot id, logind session id and creation time). The manager keeps it as
    # backend_data["key"] and gives a session it already knows under that key its old id.
    key: str
    user: str
    uid: int
    logon_time: float
    display: str | None = None
    client: str | None = None
    # Becomes Session.backend_data (plus "key"); its "details" entry, if any, is public
    # (the API shows it): everything else stays the backend's.
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class DiscoveringBackend(Protocol):
    """A SessionBackend whose sessions are not started by Polydesk but found (logind).

    The manager opens it before re-adopting stored sessions, then runs ``discover``
    as a task for the daemon's life. A discovered session ends as any other does:
    the backend's ``wait_ended`` returns.
    """

    name: str

    async def open(self) -> None:
        """Connect; raise BackendError when this backend cannot run on this machine."""
        ...

    async def discover(self, found: Callable[[Discovered], Awaitable[None]]) -> None:
        """Report every session there is now, then each new one as it starts; never return.

        A session may be reported more than once (the listing and its start signal can
        overlap): the manager ignores a key it already has.
        """
        ...
