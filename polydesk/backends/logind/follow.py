"""Following logind's sessions: the first listing, then ``SessionNew`` and ``SessionRemoved``
live, and what is known of each one meanwhile (``Live``: its info, whether it ended).

A SessionRemoved is believed only once logind itself no longer has the session: anyone on
the bus may emit a signal that looks like logind's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from polydesk.backends.base import Discovered
from polydesk.backends.logind.dbus import Login1, Login1Error, SessionInfo
from polydesk.backends.logind.sessions import SAFE_ID, Live, Ref, discovered, session_key
from polydesk.core.model import BackendError

log = logging.getLogger(__name__)

REPORTED_CLASSES = frozenset({"user"})  # not greeters, lock screens or background (cron) sessions
T = TypeVar("T")


class Follower:
    """The logind sessions of this boot, as the bus tells of them."""

    def __init__(self, login1: Login1, boot_id: str) -> None:
        self.login1 = login1
        self._boot_id = boot_id
        self.live: dict[str, Live] = {}  # logind session id -> what we know
        self._new: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def open(self) -> None:
        async with self._open_lock:
            if self._opened and self.login1.connected:
                return
            try:
                await self.login1.connect()
                # Subscribed before the first listing, so no session starts unseen in between.
                await self.login1.subscribe(self._on_new, self._on_removed)
            except Login1Error as exc:
                raise BackendError(f"logind backend: {exc}") from exc
            self._opened = True

    async def discover(self, found: Callable[[Discovered], Awaitable[None]]) -> None:
        await self.open()
        for _, path in await translated(self.login1.list_sessions()):
            await self._report(path, found)
        while True:
            _, path = await self._new.get()
            await self._report(path, found)

    async def _report(self, path: str, found: Callable[[Discovered], Awaitable[None]]) -> None:
        try:
            info = await self.login1.session(path)
        except Login1Error as exc:
            log.warning("logind session %s: %s", path, exc)
            return
        if info is None or info.state == "closing" or info.session_class not in REPORTED_CLASSES:
            return
        if not SAFE_ID.fullmatch(info.id) or not info.user:
            log.warning("logind session %r at %s has an unusable id or no user", info.id, path)
            return
        live = self.register(info)
        if live.ended.is_set():
            return
        try:
            await found(discovered(info, self._boot_id))
        except Exception:  # the manager failed to record it (a full disk); keep following the rest
            log.exception("could not record logind session %s", info.id)

    def register(self, info: SessionInfo) -> Live:
        key = session_key(info, self._boot_id)
        live = self.live.get(info.id)
        if live is None or live.key != key:
            if live is not None:
                live.ended.set()  # the same id again after a reboot: not the same session
            live = self.live[info.id] = Live(info, key)
        else:
            live.info = info
        return live

    def _on_new(self, session_id: str, path: str) -> None:
        self._new.put_nowait((session_id, path))

    def _on_removed(self, session_id: str, path: str) -> None:
        if session_id in self.live:
            self._spawn(self._confirm_removed(session_id, path))

    async def _confirm_removed(self, session_id: str, path: str) -> None:
        """Believe a SessionRemoved only once logind itself no longer has the session."""
        try:
            info = await self.login1.session(path)
        except Login1Error as exc:
            log.warning("logind session %s: %s", session_id, exc)
            return
        live = self.live.get(session_id)
        if live is not None and (info is None or info.state == "closing"
                                 or session_key(info, self._boot_id) != live.key):
            self.ended(session_id)

    def ended(self, session_id: str) -> None:
        live = self.live.pop(session_id, None)
        if live is not None:
            live.ended.set()

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def current(self, ref: Ref) -> SessionInfo | None:
        """The session as logind has it now; None once it is gone or closing."""
        info = await translated(self.login1.session(ref.path))
        if info is None or info.state == "closing" or session_key(info, self._boot_id) != ref.key:
            live = self.live.get(ref.logind_id)
            if live is not None and live.key == ref.key:
                self.ended(ref.logind_id)
            return None
        live = self.register(info)
        live.info = info
        return info

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.login1.close()
        self._opened = False


async def translated(work: Awaitable[T]) -> T:
    """``work``'s result; a D-Bus failure becomes a BackendError."""
    try:
        return await work
    except Login1Error as exc:
        raise BackendError(f"logind: {exc}") from exc
