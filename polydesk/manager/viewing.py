"""Who may watch whose screen, and which screen that is: the monitoring rules in one place.

Policy's VIEW says which roles may watch a session; the settings narrow it for other people's
sessions: with ``monitoring`` off nobody watches anyone else's screen (not even through a
station), and privileged sessions are shown only with ``show_privileged_sessions``. The
Dashboard's thumbnails, its live pictures and the station bridge all ask here.
"""

from __future__ import annotations

from typing import Protocol

from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.model import Action, Caller, NotPermitted, Role, Session, UnknownSession
from polydesk.core.screen import Screen
from polydesk.manager.parts import Parts
from polydesk.manager.stations import Mode
from polydesk.thumbnails.feed import PLACEHOLDER_TEXT, Thumbnail, Thumbnailer, placeholder

MONITORING_OFF = "monitoring is switched off (setting monitoring)"


def monitoring_on(caller: Caller, session: Session, settings: Settings) -> policy.Decision:
    """The "monitoring off" rule: another person's screen is shown only while monitoring is on."""
    if settings.monitoring or policy.owns(caller, session):
        return policy.ALLOW
    return policy.Decision(False, MONITORING_OFF)


def may_view(caller: Caller, session: Session, settings: Settings) -> policy.Decision:
    """Viewing is policy's VIEW, narrowed by the monitoring settings for other people's sessions."""
    decision = policy.may(caller, Action.VIEW, session)
    if not decision or policy.owns(caller, session):
        return decision
    monitoring = monitoring_on(caller, session, settings)
    if not monitoring:
        return monitoring
    if session.role != Role.STANDARD and not settings.show_privileged_sessions:
        return policy.Decision(
            False, "administrator and Dashboard-user sessions are not shown "
                   "(setting show_privileged_sessions)")
    return policy.ALLOW


def on_dashboard(caller: Caller, session: Session, settings: Settings) -> bool:
    """Whether the Dashboard grid shows this session (MultiPoint hides privileged ones by default)."""
    if not policy.may_see(caller, session):
        return False
    return session.role == Role.STANDARD or settings.show_privileged_sessions


class Viewing:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def may_view(self, caller: Caller, session: Session) -> policy.Decision:
        return may_view(caller, session, self.parts.settings)

    def on_dashboard(self, caller: Caller, session: Session) -> bool:
        return on_dashboard(caller, session, self.parts.settings)

    def check_station(self, caller: Caller, session_id: str, mode: Mode) -> None:
        """A station that watches or controls another person's session needs monitoring on
        (policy and the rest are open_station's); NotPermitted otherwise, not audited."""
        session = self.parts.store.session(session_id)
        if mode != Mode.OWN and session is not None:
            decision = monitoring_on(caller, session, self.parts.settings)
            if not decision:
                raise NotPermitted(decision.reason)

    def watchable(self, caller: Caller, session_id: str) -> Session:
        """The session if the caller may watch it; else UnknownSession / NotPermitted.

        Reads the store (not ``get_session``) so a thumbnail does not cost an idle-time query.
        """
        session = self.parts.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        if not policy.may_see(caller, session):
            raise NotPermitted(f"session {session_id} belongs to another user")
        decision = self.may_view(caller, session)
        if not decision:
            raise NotPermitted(decision.reason)
        return session

    def screen_of(self, session: Session) -> Screen | None:
        """The screen a thumbnail of the session is read from; None when it has none."""
        backend = self.parts.backends.get(session.backend)
        return backend.screen(session) if backend is not None else None

    def no_screen_text(self, session: Session) -> str:
        """What the placeholder says: the backend's reason when it has one (logind: a Wayland session)."""
        backend = self.parts.backends.get(session.backend)
        said = backend.screen_unavailable_reason(session) if backend is not None else None
        return said or PLACEHOLDER_TEXT


class Watching(Protocol):
    """What ScreenThumbnails asks of the manager (Viewing, or the Manager facade)."""

    def watchable(self, caller: Caller, session_id: str) -> Session: ...

    def screen_of(self, session: Session) -> Screen | None: ...

    def no_screen_text(self, session: Session) -> str: ...


class ScreenThumbnails:
    """The thumbnails of this host's sessions, as its rules let a caller have them: for its own
    web interface and for callers of other hosts of the fleet (fleet.answer)."""

    def __init__(self, watching: Watching, feed: Thumbnailer) -> None:
        self.watching = watching
        self.feed = feed  # the capture loops: closed by app.py

    def watchable(self, caller: Caller, session_id: str) -> Session:
        """The session if ``caller`` may watch it (UnknownSession, NotPermitted otherwise)."""
        return self.watching.watchable(caller, session_id)

    async def of(self, session: Session, size: str) -> Thumbnail:
        """The session's picture (a placeholder that says why when it has no screen); the caller
        was checked (``watchable``)."""
        screen = self.watching.screen_of(session)
        if screen is None:
            return placeholder(size, self.watching.no_screen_text(session))
        return await self.feed.get(session.id, screen, size)

    async def for_caller(self, caller: Caller, session_id: str, size: str) -> Thumbnail:
        """The thumbnail this host serves ``caller`` of one of its own sessions (its rules, its settings)."""
        return await self.of(self.watching.watchable(caller, session_id), size)

    async def for_fleet(self, caller: Caller, session_id: str, size: str) -> tuple[bytes, str, int]:
        """What this host answers another host's thumbnail request with (fleet.answer's ThumbnailSource)."""
        thumb = await self.for_caller(caller, session_id, size)
        return thumb.jpeg, thumb.etag, thumb.version
