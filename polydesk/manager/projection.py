"""Project a session's screen to other sessions' stations, and stop.

A projection is a mark on each target session (``Session.projection``, kept in the store): while
it is there, the target's own station is served the source's screen, view-only, by the bridge's
relay (web/relay.py). Nothing runs inside the target session, so nothing there can end it. The
target's desktop keeps running underneath, as it was (a block on it holds, and is what the
station shows again after). Starting and stopping hang up the targets' own stations with
``switched`` set: the page connects again at once, and the bridge gives it what it should show.

A projection ends when its source session ends or disconnects (``source_gone``, called from
Parts.set and Parts.forget), and a target that ends simply leaves it.
"""

from __future__ import annotations

import logging
import time

from polydesk.core.events import Event
from polydesk.core.model import (
    SYSTEM,
    Action,
    Caller,
    Conflict,
    InvalidRequest,
    NotPermitted,
    Outcome,
    Projection,
    Session,
    SessionState,
    Status,
    Target,
    UnknownSession,
)
from polydesk.manager.each import each, resolve
from polydesk.manager.parts import Parts
from polydesk.manager.stations import Mode
from polydesk.manager.viewing import may_view

log = logging.getLogger(__name__)

# Reasons a target's station is hung up with (the page connects again at once, not shown).
PROJECTION_STARTED = "Showing another screen"
PROJECTION_ENDED = "Showing your own screen again"
# Why a projection ended by itself (the audit says so).
SOURCE_ENDED = "the projected session ended"
SOURCE_DISCONNECTED = "the projected session was disconnected"


ONE_HOST = "a projection stays on one host: its targets must be sessions of this host"


class Projections:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        parts.source_gone = self.source_gone

    def source(self, caller: Caller, source_id: str | None) -> Session:
        """The session to project: ``source_id``, or the caller's own (None)."""
        parts = self.parts
        if source_id is None:
            own = [s for s in parts.sessions_now() if s.uid == caller.uid
                   and s.state != SessionState.LOGGING_OFF]
            if not own:
                raise Conflict("you have no session to project: log on first, or name one")
            return own[0]
        session = parts.session_now(source_id)
        if session is None:
            raise UnknownSession(source_id)
        decision = may_view(caller, session, parts.settings)
        if not decision:
            reason = f"you may not project session {source_id}: {decision.reason}"
            refused = Outcome(source_id, Status.FORBIDDEN, session.user, reason)
            parts.audit.one(caller, Action.PROJECT, refused, allowed=False, detail={"source": source_id})
            raise NotPermitted(reason)
        return session

    async def project(self, caller: Caller, source_id: str | None, target: Target,
                      what_if: bool = False) -> list[Outcome]:
        """Show the source's screen at the targets' stations (their own desktops keep running)."""
        if target.scope is not None:
            raise InvalidRequest(ONE_HOST + " (no --fleet, no --host)")
        source = self.source(caller, source_id)
        parts = self.parts
        if source.state not in (SessionState.ACTIVE, SessionState.DISCONNECTED):
            raise Conflict(f"session {source.id} is {source.state}: it cannot be projected")
        if parts.backend(source).rfb_socket(source) is None:
            raise Conflict(f"session {source.id} ({source.backend}) has no screen the daemon can "
                                 "relay: only Polydesk's own (xvnc) sessions can be projected")
        mark = Projection(source.id, source.user, caller.user, time.time())
        if target.all:  # everyone the caller may act on, but the caller and the source
            ids = tuple(s.id for s in resolve(parts, caller, Action.PROJECT, target)
                        if isinstance(s, Session) and s.id != source.id)
            if not ids:
                return []
            target = Target(ids=ids)

        elsewhere = [Outcome(i, Status.FAILED, None, ONE_HOST) for i in target.ids if "/" in i]
        target = Target(ids=tuple(i for i in target.ids if "/" not in i), all=target.all)
        if not target.ids and not target.all:
            parts.audit.outcomes(caller, Action.PROJECT, elsewhere, detail={"source": source.id})
            return elsewhere

        async def act(session: Session) -> Outcome:
            if session.id == source.id:
                return Outcome(session.id, Status.FAILED, session.user,
                               "a session cannot be projected onto itself")
            if parts.backend(session).rfb_socket(session) is None:
                return Outcome(session.id, Status.FAILED, session.user,
                               f"session {session.id} ({session.backend}) has no station the daemon "
                               "serves (a seat's own screen): it cannot show a projection")
            if what_if:
                return Outcome(session.id, Status.WOULD_DO, session.user)
            parts.set(session.with_(projection=mark))
            parts.stations.close_all(session.id, PROJECTION_STARTED, Mode.OWN, switched=True)
            parts.bus.publish(Event("projection-started", session.id, None,
                                    {"source": source.id, "source_user": source.user, "by": caller.user}))
            return Outcome(session.id, Status.PROJECTED, session.user)

        return elsewhere + await each(parts, caller, Action.PROJECT, target, act,
                                      {"source": source.id, "source_user": source.user, "what_if": what_if})

    async def stop(self, caller: Caller, source_id: str | None, target: Target | None = None,
                   what_if: bool = False) -> list[Outcome]:
        """Give the targets their own desktops back: those of ``target``, or every target of
        ``source_id`` the caller may stop, or (neither) every projection the caller may stop."""
        parts = self.parts
        if source_id is not None and parts.session_now(source_id) is None and not self._targets(source_id):
            raise UnknownSession(source_id)
        if target is None:
            ids = tuple(s.id for s in parts.sessions_now() if s.projection is not None
                        and (source_id is None or s.projection.source == source_id))
            if not ids:
                return []
            target = Target(ids=ids)

        async def act(session: Session) -> Outcome:
            shown = session.projection
            if shown is None or (source_id is not None and shown.source != source_id):
                return Outcome(session.id, Status.FAILED, session.user,
                               f"session {session.id} is not shown a projection"
                               + (f" of session {source_id}" if source_id else ""))
            if what_if:
                return Outcome(session.id, Status.WOULD_DO, session.user)
            self._give_back(session, f"stopped by {caller.user}")
            return Outcome(session.id, Status.PROJECTION_STOPPED, session.user)

        return await each(parts, caller, Action.STOP_PROJECTING, target, act,
                          {"source": source_id, "what_if": what_if}, allow_logging_off=True)

    def _targets(self, source_id: str) -> list[Session]:
        return [s for s in self.parts.store.sessions()
                if s.projection is not None and s.projection.source == source_id]

    def _give_back(self, session: Session, why: str) -> None:
        self.parts.set(session.with_(projection=None))
        self.parts.stations.close_all(session.id, PROJECTION_ENDED, Mode.OWN, switched=True)
        source = session.projection.source if session.projection else None
        self.parts.bus.publish(Event("projection-ended", session.id, None, {"source": source, "why": why}))

    def source_gone(self, source_id: str, ended: bool) -> None:
        """Session ``source_id`` ended or was disconnected: its projections end, audited as the
        system's."""
        targets = self._targets(source_id)
        if not targets:
            return
        why = SOURCE_ENDED if ended else SOURCE_DISCONNECTED
        for target in targets:
            self._give_back(target, why)
        log.info("projection of session %s ended: %s", source_id, why)
        self.parts.audit.outcomes(SYSTEM, Action.STOP_PROJECTING,
                                  [Outcome(t.id, Status.PROJECTION_STOPPED, t.user, why) for t in targets],
                                  detail={"source": source_id, "reason": why})
