"""A station's browser sizes its session's screen (issue 14.4).

A desktop fixed at 1280x800 was scaled down to 60% on a tablet. The user's own
station (never a watcher's: View and Take control leave the student's screen as
it is) says how large its window is, through the RFB SetDesktopSize the bridge
parses and never forwards (rfbfilter.py); here that size is checked against the
roles, clamped to the administrator's ``min_geometry`` .. ``max_geometry``, given to
the session's Xvnc through RandR (system/x11/xrandr.py), remembered with the session
(so a resume keeps it) and audited once per new size.

Resizes of one session run one at a time and the latest wins: a window being
dragged asks for dozens of sizes, and only the last one matters.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from polydesk.backends.base import SessionBackend
from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    NotPermitted,
    Session,
    SessionState,
    UnknownSession,
)
from polydesk.manager.stations import Mode, Station
from polydesk.system.x11 import xrandr
from polydesk.system.x11.xauth import X11Error

log = logging.getLogger(__name__)

STORED_KEY = "station_size"  # in the session's host_data: [width, height] its station last gave


def parse_size(text: str) -> tuple[int, int]:
    """"1280x800" -> (1280, 800); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s*", text)
    if match is None:
        raise ValueError(f"not WIDTHxHEIGHT: {text!r}")
    return int(match.group(1)), int(match.group(2))


def limits(settings: Settings) -> tuple[tuple[int, int], tuple[int, int]]:
    """(smallest, largest) screen a station may ask for, within what the daemon can capture."""
    low, high = parse_size(settings.min_geometry), parse_size(settings.max_geometry)
    high = (min(high[0], xrandr.HARD_MAX), min(high[1], xrandr.HARD_MAX))
    low = (min(max(low[0], xrandr.HARD_MIN), high[0]), min(max(low[1], xrandr.HARD_MIN), high[1]))
    return low, high


def clamp(width: int, height: int, settings: Settings) -> tuple[int, int]:
    (min_w, min_h), (max_w, max_h) = limits(settings)
    return max(min_w, min(width, max_w)), max(min_h, min(height, max_h))


def stored_size(session: Session) -> tuple[int, int] | None:
    value = session.backend_data.get(STORED_KEY)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) for n in value):
        return value[0], value[1]
    return None


@dataclass(frozen=True)
class Ports:
    """What the manager lends this use case (it stays the one owner of sessions and the audit)."""

    session_now: Callable[[str], Session | None]
    host_of: Callable[[Session], SessionBackend]
    save: Callable[[Session], Session]
    audit: Callable[[Caller, Session, tuple[int, int], tuple[int, int]], None]


class ScreenSizes:
    def __init__(self, settings: Settings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self._wanted: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}  # (to set, asked)
        self._running: dict[str, asyncio.Task[None]] = {}

    async def request(self, caller: Caller, station: Station, width: int, height: int) -> tuple[int, int]:
        """The size the session will get for what ``station`` asked (checked now, applied in the
        background, latest first). NotPermitted for a watcher's station or another's session."""
        session = self.ports.session_now(station.session_id)
        if session is None:
            raise UnknownSession(station.session_id)
        if station.mode != Mode.OWN or station.closed.is_set():
            raise NotPermitted("only the session's own station sizes its screen")
        decision = policy.may(caller, Action.RESIZE, session)
        if not decision or not policy.owns(caller, session):
            raise NotPermitted(decision.reason or "only the session's user sizes its screen")
        if session.state == SessionState.LOGGING_OFF:
            raise NotPermitted(f"session {session.id} is logging off")
        size = clamp(width, height, self.settings)
        self._wanted[session.id] = size, (width, height)
        running = self._running.get(session.id)
        if running is None or running.done():
            self._running[session.id] = asyncio.create_task(self._apply(caller, session.id))
        return size

    async def _apply(self, caller: Caller, session_id: str) -> None:
        try:
            while (wanted := self._wanted.pop(session_id, None)) is not None:
                await self._resize(caller, session_id, *wanted)
        finally:
            self._running.pop(session_id, None)

    async def _resize(self, caller: Caller, session_id: str, size: tuple[int, int],
                      asked: tuple[int, int]) -> None:
        session = self.ports.session_now(session_id)
        if session is None or session.state == SessionState.LOGGING_OFF:
            return
        screen = self.ports.host_of(session).screen(session)
        if screen is None:
            return
        try:
            now = await asyncio.to_thread(xrandr.set_size, screen, *size)
        except (X11Error, BackendError) as exc:
            log.warning("session %s: could not resize its screen to %dx%d: %s", session_id, *size, exc)
            return
        session = self.ports.session_now(session_id)
        if session is None or stored_size(session) == now:
            return  # the same size again (a reload, a resume): nothing new to remember or audit
        self.ports.save(session.with_(backend_data={**session.backend_data, STORED_KEY: list(now)}))
        self.ports.audit(caller, session, asked, now)

    async def wait(self, session_id: str) -> None:
        """Until what was asked for ``session_id`` is applied (tests, and a station's resume)."""
        running = self._running.get(session_id)
        if running is not None:
            await asyncio.shield(running)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
