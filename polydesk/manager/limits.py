"""Idle and disconnected limits: a session left alone is disconnected, then logged off.

Settings ``idle_disconnect_after`` and ``disconnected_logoff_after`` (seconds; 0 = never, the
default). An active session whose keyboard and mouse have been still that long is disconnected
(its station closes; the session keeps running) after a warning shown in the session a little
before. A session disconnected that long is logged off with the usual graceful steps (windows
asked to close, then the processes ended); nobody is at it to warn.

A small periodic check the manager starts and cancels; every action goes through the manager's
use cases as the system caller, so it is checked, audited and published like any other. It
sees the manager only as the few things it asks of it (``Desk``), so it does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Protocol

from polydesk.backends.base import SessionBackend
from polydesk.config.settings import Settings
from polydesk.core.i18n import N_
from polydesk.core.model import (
    SYSTEM,
    BackendError,
    Caller,
    Outcome,
    PolydeskError,
    Session,
    SessionState,
    Target,
)
from polydesk.manager.stations import Stations
from polydesk.store.store import Store

log = logging.getLogger(__name__)

# Shown in the session, in its user's language (Manager.in_session).
IDLE_WARNING = N_("This session has not been used for a while. It will be disconnected in {seconds} "
                  "seconds unless you move the mouse or press a key. Your programs keep running.")
IDLE_REASON = N_("Disconnected: the session was idle for too long")
MAX_WARNING_S = 60.0  # how long before the idle disconnect the warning comes, at most


def warning_lead(limit: float) -> float:
    """Seconds between the idle warning and the disconnect: a fifth of the limit, at most a minute."""
    return min(MAX_WARNING_S, limit / 5)


def check_interval(*limits: float) -> float:
    """Often enough to warn in time for the shortest limit, never busier than 5 times a second."""
    active = [limit for limit in limits if limit > 0]
    return min(5.0, max(0.2, min(active) / 10)) if active else 5.0


class Desk(Protocol):
    """What the limits ask of the manager (the Manager is one)."""

    settings: Settings
    default_backend: SessionBackend
    store: Store
    stations: Stations

    def in_session(self, session: Session, message: str) -> str: ...

    async def message(self, caller: Caller, target: Target, text: str,
                      timeout: int | None = None) -> list[Outcome]: ...

    async def disconnect(self, caller: Caller, target: Target) -> list[Outcome]: ...

    async def logoff(self, caller: Caller, target: Target, *, grace: int | None = None,
                     wait: bool = True) -> list[Outcome]: ...


class Limits:
    def __init__(self, manager: Desk) -> None:
        self.manager = manager
        self.idle_after = float(manager.settings.idle_disconnect_after)
        self.logoff_after = float(manager.settings.disconnected_logoff_after)
        self._warned: set[str] = set()  # sessions told they are about to be disconnected
        self._disconnected_since: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.idle_after > 0 or self.logoff_after > 0

    async def run(self) -> None:
        interval = check_interval(self.idle_after, self.logoff_after)
        while True:
            try:
                await self.check()
            except PolydeskError as exc:  # a full disk or a backend hiccup: try again next round
                log.warning("checking idle and disconnected limits failed: %s", exc)
            await asyncio.sleep(interval)

    async def check(self, now: float | None = None) -> None:
        """One round: warn, disconnect and log off whatever is over its limit."""
        now = time.time() if now is None else now
        backend = self.manager.default_backend  # the sessions Polydesk started; not the OS's own (logind)
        sessions = [s for s in self.manager.store.sessions() if s.backend == backend.name]
        for gone in set(self._disconnected_since) - {s.id for s in sessions}:
            del self._disconnected_since[gone]
        self._warned &= {s.id for s in sessions}
        for session in sessions:
            if session.state == SessionState.ACTIVE and self.idle_after > 0:
                self._disconnected_since.pop(session.id, None)
                await self._idle(session)
            elif session.state == SessionState.DISCONNECTED and self.logoff_after > 0:
                since = self._disconnected_since.setdefault(session.id, self._since(session, now))
                if now - since >= self.logoff_after:
                    del self._disconnected_since[session.id]
                    log.info("session %s was disconnected for %.0f s: logging it off",
                             session.id, now - since)
                    await self.manager.logoff(SYSTEM, Target(ids=(session.id,)), grace=0, wait=False)

    async def _idle(self, session: Session) -> None:
        try:
            idle = await self.manager.default_backend.idle_seconds(session)  # check() keeps only its sessions
        except BackendError:
            idle = None
        if idle is None:
            return  # a backend that cannot tell is never idle
        lead = warning_lead(self.idle_after)
        if idle < self.idle_after - lead:
            self._warned.discard(session.id)  # used again: the next idle stretch gets its own warning
            return
        if session.id not in self._warned:  # always warn first, even when the check came late
            self._warned.add(session.id)
            seconds = max(1, math.ceil(self.idle_after - idle))
            text = self.manager.in_session(session, IDLE_WARNING).format(seconds=seconds)
            await self.manager.message(SYSTEM, Target(ids=(session.id,)), text, timeout=seconds)
            return
        if idle >= self.idle_after:
            self._warned.discard(session.id)
            log.info("session %s was idle for %.0f s: disconnecting it", session.id, idle)
            self.manager.stations.close_all(session.id, IDLE_REASON)  # the station says why
            await self.manager.disconnect(SYSTEM, Target(ids=(session.id,)))

    def _since(self, session: Session, now: float) -> float:
        """When the session's last station left, if the records say; else from now on."""
        with contextlib.suppress(PolydeskError):
            ends = [row["disconnected_at"] for row in self.manager.store.connections(session.id)
                    if row["mode"] == "own" and row["disconnected_at"] is not None]
            if ends:
                return min(now, float(max(ends)))
        return now
