"""Sessions that end by themselves: a display server that dies, a user who logs out from inside.

Each running session has a watcher task waiting on its backend; when the session ends
without a log-off, it is forgotten, recorded as ended and audited as the system's doing.
"""

from __future__ import annotations

import contextlib

from polydesk.core.events import session_ended
from polydesk.core.model import (
    SYSTEM,
    Action,
    BackendError,
    EndReason,
    Outcome,
    Session,
    SessionState,
    Status,
)
from polydesk.manager.parts import Parts
from polydesk.manager.tasks import background


class Watch:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def watch(self, session: Session) -> None:
        self.parts.watchers[session.id] = background(self._watch_one(session),
                                                     f"watching session {session.id}")

    def watching(self, session_id: str) -> bool:
        """Whether a watcher or a log-off under way follows the session."""
        return session_id in self.parts.watchers or session_id in self.parts.logoffs

    async def _watch_one(self, session: Session) -> None:
        reason = await self.parts.backend(session).wait_ended(session)
        if session.id in self.parts.logoffs:
            return  # a log-off in progress finishes the session itself
        current = self.parts.store.session(session.id)
        if current is not None and current.state != SessionState.LOGGING_OFF:
            self.parts.watchers.pop(session.id, None)
            why = ("the user left the desktop" if reason == EndReason.LOGOUT
                   else "its display server exited")
            await self.ended_by_itself(current, reason, why)

    async def ended_by_itself(self, session: Session, reason: EndReason, why: str) -> None:
        """Ended without a log-off: a crash, or the user logging out from inside."""
        backend = self.parts.backends.get(session.backend)
        if backend is not None:
            with contextlib.suppress(BackendError):
                await backend.end(session, kill_after=0)
        self.parts.forget(session.id, session.user)
        ended_by = session.user if reason == EndReason.LOGOUT else SYSTEM.user
        self.parts.store.end_session(session, ended_by, reason)
        self.parts.bus.publish(session_ended(session.id, str(reason), ended_by))
        self.parts.audit.one(SYSTEM, Action.LOGOFF, Outcome(session.id, Status.ENDED, session.user, why),
                             detail={"crashed": reason == EndReason.CRASHED, "reason": str(reason)})
