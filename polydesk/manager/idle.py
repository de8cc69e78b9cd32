"""How long each session has been idle, as the listings show it.

Only the first time waits for the backend (an X query each): after that the last answer is
given at once, aged, while one query per session at a time refreshes it, so 50 clients
listing at once never wait on X servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from polydesk.backends.base import SessionBackend
from polydesk.core.model import BackendError, Session
from polydesk.manager.tasks import background

IDLE_FRESH_S = 2.0  # an idle time older than this is asked for again (in the background)


class IdleTimes:
    def __init__(self, backends: Mapping[str, SessionBackend]) -> None:
        self.backends = backends
        self._known: dict[str, tuple[float, float | None]] = {}  # id -> (when asked, idle then)
        self._queries: dict[str, asyncio.Task[float | None]] = {}

    def asked(self, session_id: str) -> bool:
        """Whether the backend was ever asked about this session."""
        return session_id in self._known

    async def seconds(self, session: Session) -> float | None:
        """Seconds since the session's last input; waits only the first time."""
        if session.id in self._known:
            return self.known(session)
        self.known(session)  # starts the query
        return await asyncio.shield(self._queries[session.id])

    def known(self, session: Session) -> float | None:
        """The last answer, aged; asks again in the background when it is older than IDLE_FRESH_S."""
        now = time.monotonic()
        cached = self._known.get(session.id)
        if (cached is None or now - cached[0] >= IDLE_FRESH_S) and session.id not in self._queries:
            self._queries[session.id] = background(self._query(session),
                                                   f"idle time of session {session.id}")
        if cached is None or cached[1] is None:
            return None
        return cached[1] + (now - cached[0])

    def forget(self, session_id: str) -> None:
        self._known.pop(session_id, None)
        self._queries.pop(session_id, None)  # a query still running then keeps its answer

    def tasks(self) -> list[asyncio.Task[float | None]]:
        return list(self._queries.values())

    async def _query(self, session: Session) -> float | None:
        backend = self.backends.get(session.backend)
        try:
            idle = await asyncio.wait_for(backend.idle_seconds(session), 1) if backend else None
        except (BackendError, TimeoutError):
            idle = None
        if self._queries.get(session.id) is asyncio.current_task():  # not forgotten meanwhile
            del self._queries[session.id]
            self._known[session.id] = (time.monotonic(), idle)
        return idle
