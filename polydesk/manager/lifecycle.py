"""Start and close: what the manager does when the daemon starts and stops.

At start every session the store knows is adopted again (or recorded as ended while the
daemon was down), log-offs a crash interrupted are finished, the backends whose sessions the
OS starts are followed, and the manager's own loops (limits, block guard) begin. At close
they all stop; sessions keep running without the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time

from polydesk.backends.base import DiscoveringBackend
from polydesk.core.model import EndReason, Session, SessionState
from polydesk.manager.attach import Attach
from polydesk.manager.blockguard import BlockGuard
from polydesk.manager.discovery import Discovery
from polydesk.manager.limits import Desk, Limits
from polydesk.manager.logoff import Logoffs
from polydesk.manager.parts import Parts
from polydesk.manager.screensize import ScreenSizes
from polydesk.manager.tasks import background
from polydesk.manager.watch import Watch

log = logging.getLogger(__name__)


class Lifecycle:
    def __init__(self, parts: Parts, watch: Watch, logoffs: Logoffs, discovery: Discovery,
                 guard: BlockGuard, attach: Attach, screens: ScreenSizes) -> None:
        self.parts = parts
        self.watch = watch
        self.logoffs = logoffs
        self.discovery = discovery
        self.guard = guard
        self.attach = attach
        self.screens = screens
        self.limits: asyncio.Task[None] | None = None  # idle / disconnected limits (limits.py)
        self.block_guard: asyncio.Task[None] | None = None  # blockguard.py

    async def start(self, desk: Desk) -> None:
        """Re-adopt every session the store knows; finish log-offs a crash interrupted;
        then follow the backends whose sessions the OS starts (logind). ``desk``: the manager,
        as the limits act through its use cases."""
        parts = self.parts
        discovering = [b for b in parts.backends.values() if isinstance(b, DiscoveringBackend)]
        for discovering_backend in discovering:
            await discovering_backend.open()  # a BackendError here stops the daemon with its message
        parts.store.end_dangling_connections(time.time())  # no station survives a restart
        for session in parts.store.sessions():
            await self._adopt(session)
        for discovering_backend in discovering:
            self.discovery.follow(discovering_backend)
        limits = Limits(desk)
        if limits.enabled:
            self.limits = background(limits.run(), "idle and disconnected limits")
        if parts.settings.block_guard_interval > 0:
            self.block_guard = background(self.guard.run(parts.settings.block_guard_interval),
                                          "the block guard")

    async def _adopt(self, session: Session) -> None:
        if session.blocked:
            self.parts.blocked.add(session.id)
        backend = self.parts.backends.get(session.backend)
        alive = backend is not None and await backend.adopt(session)
        if not alive and isinstance(backend, DiscoveringBackend):
            await self.watch.ended_by_itself(session, EndReason.LOGOUT, "it ended while the daemon was down")
        elif not alive:
            await self.watch.ended_by_itself(session, EndReason.CRASHED,
                                             "its display server died while the daemon was down")
        elif session.state == SessionState.LOGGING_OFF:
            self.logoffs.resume(session, self.logoffs.state_without_logoff(session), recovered=True)
            self.watch.watch(session)
        else:
            self.watch.watch(session)

    async def close(self) -> None:
        """Stop watching and wait for nothing: sessions keep running without the daemon."""
        parts = self.parts
        tasks = [*self.discovery.tasks, *parts.watchers.values(), *parts.logoffs.values(),
                 *self.attach.going_away.values(), *parts.idle.tasks(),
                 *[task for task in (self.limits, self.block_guard) if task is not None]]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.screens.close()
        for backend in parts.backends.values():
            await backend.close()
