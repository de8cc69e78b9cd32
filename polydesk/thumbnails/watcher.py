"""A watcher: one subscriber to live thumbnails (a Dashboard's event stream).

It names the sessions it watches; the thumbnailer keeps their feeds running while it does
and tells it which of them changed. Made by ``Thumbnailer.watcher()``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from polydesk.core.screen import Screen

if TYPE_CHECKING:
    from polydesk.thumbnails.feed import Thumbnailer


class Watcher:
    """One subscriber (a Dashboard page): the sessions it watches and those that changed since."""

    def __init__(self, thumbnails: Thumbnailer) -> None:
        self._thumbnails = thumbnails
        self.sessions: set[str] = set()
        self._changed: set[str] = set()
        self._event = asyncio.Event()

    def add(self, session_id: str, screen: Screen | None) -> None:
        """Watch a session; one without a screen is only counted (its picture is a placeholder)."""
        if session_id in self.sessions:
            return
        self.sessions.add(session_id)
        if screen is not None:
            self._thumbnails._attach(self, session_id, screen)

    def remove(self, session_id: str) -> None:
        if session_id in self.sessions:
            self.sessions.discard(session_id)
            self._changed.discard(session_id)
            self._thumbnails._detach(self, session_id)

    def close(self) -> None:
        for session_id in list(self.sessions):
            self.remove(session_id)

    def touch(self, session_id: str) -> None:
        """Count a watched session as changed: its subscriber wants its picture (again)."""
        if session_id in self.sessions:
            self._notify(session_id)

    def _notify(self, session_id: str) -> None:
        self._changed.add(session_id)
        self._event.set()

    async def changed(self) -> dict[str, int]:
        """Wait for changes; {session id: newest version} of every watched session that
        changed since the last call (several changes of one session come as one)."""
        await self._event.wait()
        self._event.clear()
        changed, self._changed = self._changed, set()
        return {sid: self._thumbnails.version(sid) for sid in changed}
