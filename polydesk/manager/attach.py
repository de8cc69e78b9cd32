"""Stations: the browsers (or VNC clients) attached to sessions through the bridge.

The user's own station takes the session over from any other and makes it active; watching
and taking control are checked by the roles and audited. When the last own station goes,
the session is marked disconnected after a short grace (a reload comes back within seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from polydesk.core import policy
from polydesk.core.events import Event
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    InvalidRequest,
    NotPermitted,
    Outcome,
    Session,
    SessionState,
    Status,
    StoreError,
    UnknownSession,
)
from polydesk.manager.parts import Parts
from polydesk.manager.station_book import StationBook
from polydesk.manager.stations import TAKEN_OVER, Mode, Station
from polydesk.manager.tasks import background
from polydesk.system import peer

STATION_GRACE_S = 2.0


class Attach:
    def __init__(self, parts: Parts, station_book: StationBook) -> None:
        self.parts = parts
        self.station_book = station_book
        self.going_away: dict[str, asyncio.Task[None]] = {}  # sessions whose own station just left

    async def open_station(self, caller: Caller, session_id: str, mode: Mode, client: str,
                           signin: str | None = None, station_id: int | None = None) -> Station:
        """Attach a viewer. The user's own station takes the session over from any other.
        ``station_id``: the named station it is (the bridge checked its signed cookie)."""
        parts = self.parts
        session = parts.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        own = policy.owns(caller, session)
        action = Action.VIEW if mode == Mode.VIEW else Action.CONTROL
        decision = policy.may(caller, action, session)
        if not decision or (mode == Mode.OWN and not own):
            reason = decision.reason or "only the session's user may use it as a station"
            parts.audit.one(caller, action, Outcome(session_id, Status.FORBIDDEN, session.user, reason),
                            allowed=False, detail={"mode": str(mode), "client": client})
            raise NotPermitted(reason)
        if session.state == SessionState.LOGGING_OFF:
            raise InvalidRequest(f"session {session_id} is logging off")
        station = Station(session_id, caller.user, mode, client, signin=signin)
        if mode == Mode.OWN:
            parts.stations.close_all(session_id, TAKEN_OVER, Mode.OWN)
            pending = self.going_away.pop(session_id, None)
            if pending is not None:
                pending.cancel()
            name = None if station_id is None else self.station_book.attach(station_id, session)
            parts.set(session.with_(state=SessionState.ACTIVE, client=client, station=name))
        else:
            parts.audit.one(caller, action, Outcome(session_id, Status.SHOWN, session.user),
                            detail={"mode": str(mode), "client": client})
            if mode == Mode.CONTROL:
                parts.bus.publish(Event("control-started", session_id, None, {"by": caller.user}))
        parts.stations.add(station)
        parts.store.record_connection(station.id, session_id, caller.user, str(mode), client,
                                      station.connected_at)
        return station

    def close_station(self, station: Station) -> None:
        """The bridge is gone (tab closed, network lost, taken over, session ended)."""
        parts = self.parts
        parts.stations.remove(station)
        with contextlib.suppress(StoreError):
            parts.store.end_connection(station.id, station.session_id, time.time())
        if station.mode == Mode.CONTROL:
            parts.bus.publish(Event("control-ended", station.session_id, None, {"by": station.user}))
        if station.mode == Mode.OWN and not parts.stations.of(station.session_id, Mode.OWN):
            # A reload or a flaky network comes back within seconds: wait before saying so.
            self.going_away[station.session_id] = background(
                self._mark_disconnected(station.session_id), f"station of session {station.session_id}")

    async def _mark_disconnected(self, session_id: str) -> None:
        await asyncio.sleep(STATION_GRACE_S)
        self.going_away.pop(session_id, None)
        session = self.parts.store.session(session_id)
        if (session is not None and session.state == SessionState.ACTIVE
                and not self.parts.stations.of(session_id, Mode.OWN)):
            self.parts.set(session.with_(state=SessionState.DISCONNECTED, client=None, station=None))

    def input_allowed(self, station: Station) -> bool:
        """Checked for every input message a station sends: never while blocked."""
        return station.mode != Mode.VIEW and station.session_id not in self.parts.blocked

    def audit_resize(self, caller: Caller, session: Session, asked: tuple[int, int],
                     size: tuple[int, int]) -> None:
        self.parts.audit.one(caller, Action.RESIZE, Outcome(session.id, Status.RESIZED, session.user),
                             detail={"asked": list(asked), "size": list(size)})

    async def open_rfb(self, session_id: str) -> socket.socket | None:
        """A connection to the session's RFB server, checked to be the session's own
        (non-blocking, for the station bridge); None when the session has no RFB server."""
        session = self.parts.store.session(session_id)
        endpoint = self.parts.backend(session).rfb_socket(session) if session is not None else None
        if endpoint is None:
            return None
        try:
            sock = await asyncio.to_thread(peer.connect, endpoint.path, endpoint.server,
                                           f"the screen of session {session_id}", 5.0)
        except OSError as exc:
            raise BackendError(f"session {session_id}: its screen does not answer: {exc}") from exc
        sock.setblocking(False)
        return sock
