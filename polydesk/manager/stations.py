"""Stations: the viewers attached to sessions through the daemon's bridge.

A station is one browser tab (or VNC client) on one session, in one of three
modes: ``own`` (the session's user at their desk), ``view`` (a Dashboard user
watching, input ignored) or ``control`` (a Dashboard user driving it).
Bookkeeping only; the manager decides who may attach and what it means.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class Mode(enum.StrEnum):
    OWN = "own"
    VIEW = "view"
    CONTROL = "control"


TAKEN_OVER = "Disconnected: this session was opened elsewhere"
DISCONNECTED = "Disconnected: the session was disconnected"
ENDED = "Disconnected: the session has ended"

_ids = itertools.count(1)


@dataclass(eq=False)
class Station:
    session_id: str
    user: str  # who is at this station (the session's user, or the watcher)
    mode: Mode
    client: str
    id: int = field(default_factory=lambda: next(_ids))
    connected_at: float = field(default_factory=time.time)
    signin: str | None = None  # the web sign-in whose cookie opened it (None: a token, the CLI)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_reason: str | None = None
    signed_out: bool = False  # closed because its sign-in was ended: the page goes to the log-on form
    switched: bool = False  # closed because what it shows changed (a projection): it connects again at once

    def close(self, reason: str, signed_out: bool = False, switched: bool = False) -> None:
        """Ask the bridge to hang up, telling the station why."""
        if not self.closed.is_set():
            self.close_reason = reason
            self.signed_out = signed_out
            self.switched = switched
            self.closed.set()


class Stations:
    def __init__(self) -> None:
        self._by_session: dict[str, list[Station]] = {}
        # session id -> the web sign-ins that opened an own station of it since the daemon started:
        # a tab closed a minute ago is still a browser signed in at that desk (a shared lab PC)
        self._signins: dict[str, set[str]] = {}
        # Ends web sign-ins (the web layer's Authenticator plugs itself in); None: no web interface
        self.sign_out: Callable[[set[str]], int] | None = None

    def add(self, station: Station) -> None:
        self._by_session.setdefault(station.session_id, []).append(station)
        if station.mode == Mode.OWN and station.signin is not None:
            self._signins.setdefault(station.session_id, set()).add(station.signin)

    def end_signins(self, session_id: str, reason: str) -> int:
        """End every web sign-in that was the session's own station, and close those stations
        as signed out (the page then shows the log-on form). How many sign-ins ended."""
        signins = self._signins.pop(session_id, set())
        for station in self.of(session_id, Mode.OWN):
            if station.signin is not None:
                station.close(reason, signed_out=True)
        if not signins or self.sign_out is None:
            return 0
        return self.sign_out(signins)

    def remove(self, station: Station) -> None:
        stations = self._by_session.get(station.session_id, [])
        if station in stations:
            stations.remove(station)
        if not stations:
            self._by_session.pop(station.session_id, None)

    def of(self, session_id: str, *modes: Mode) -> list[Station]:
        return [s for s in self._by_session.get(session_id, []) if not modes or s.mode in modes]

    def close_all(self, session_id: str, reason: str, *modes: Mode, switched: bool = False) -> int:
        stations = self.of(session_id, *modes)
        for station in stations:
            station.close(reason, switched=switched)
        return len(stations)
