"""Typed events: what the manager publishes to watchers, and the audit record.

The bus is in-process (one asyncio queue per subscriber); fleet mode will
carry the same events over NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from polydesk.core.model import Session


@dataclass(frozen=True)
class Event:
    kind: str  # "session-started" | "session-changed" | "session-ended" | "message" ...
    session_id: str
    session: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_started(session: Session) -> Event:
    return Event("session-started", session.id, public_session(session))


def session_changed(session: Session) -> Event:
    return Event("session-changed", session.id, public_session(session))


def session_ended(session_id: str, reason: str, ended_by: str) -> Event:
    return Event("session-ended", session_id, None, {"reason": reason, "ended_by": ended_by})


def station_of(session: Session) -> str | None:
    """The name of the station the session's user is at: a browser station's (station_book.py),
    else the logind seat's."""
    seat = (session.backend_data.get("details") or {}).get("seat")
    return session.station or (str(seat) if seat else None)


def public_session(session: Session) -> dict[str, Any]:
    """A session as interfaces show it: everything but the backend's private data."""
    return {
        "id": session.id,
        "user": session.user,
        "uid": session.uid,
        "role": str(session.role),
        "backend": session.backend,
        "host": session.backend,  # the same, under its name before 0.2 (deprecated)
        "state": str(session.state),
        "blocked": session.blocked,
        "block_message": session.block_message,
        "block_undone": session.block_undone,
        "display": session.display,
        "logon_time": session.logon_time,
        "idle_s": session.idle_s,
        "client": session.client,
        "station": station_of(session),
        # What a backend chooses to show of its own data (logind: seat, tty, type, remote host).
        "details": dict(session.backend_data.get("details") or {}),
        "logoff_deadline": session.logoff.deadline if session.logoff else None,
        # A projection target: whose screen its station shows, and who projects it.
        "projection": ({"source": session.projection.source, "source_user": session.projection.source_user,
                        "by": session.projection.by, "since": session.projection.since}
                       if session.projection else None),
        "version": session.version,
        "web_limit": session.web_limit.as_dict() if session.web_limit else None,
        "hand_raised_at": session.hand_raised_at,
    }


@dataclass(frozen=True)
class AuditRecord:
    """One line of the append-only audit log: who, what, which sessions, result."""

    time: float
    caller: str
    caller_uid: int
    role: str
    via: str
    action: str
    targets: list[str]
    allowed: bool
    results: list[dict[str, Any]]
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EventBus:
    """Fan-out of events to every current subscriber; a slow one loses old events, never blocks."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
