"""The block guard: the backend's cover stays as the store says, whatever undoes it.

Any X client of a session may turn its Xvnc's input settings back on or kill the cover
window: a program the user started before the block, an SSH login, a cron job. The
station bridge drops a blocked station's input whatever happens inside (so the person
at the station stays blocked), but the screen must stay covered and the Dashboard must
not say "Blocked" over an open desktop. Twice a second (``block_guard_interval``), each
blocked session's backend is asked to put back what was undone (``SessionBackend.restore_block``);
each time it had to, the session's ``block_undone`` count goes up (the Dashboard marks the
card) and the audit log says what was undone. A block or unblock that failed half-way is
put back here too (``restore_cover``).
"""

from __future__ import annotations

import asyncio
import logging

from polydesk.backends.base import SessionBackend
from polydesk.core.model import (
    SYSTEM,
    Action,
    BackendError,
    Outcome,
    PolydeskError,
    Session,
    SessionState,
    Status,
)
from polydesk.manager.parts import Parts

log = logging.getLogger(__name__)


class BlockGuard:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.restore_blocks()
            except PolydeskError as exc:  # a full disk: the bridge still holds; next round
                log.warning("checking blocked sessions failed: %s", exc)

    async def restore_blocks(self) -> None:
        """One round over every blocked session, at once."""
        blocked = [s.id for s in self.parts.store.sessions() if s.blocked]
        await asyncio.gather(*(self._restore_block(session_id) for session_id in blocked))

    async def _restore_block(self, session_id: str) -> None:
        async with self.parts.lock(session_id):  # never while a block or an unblock is carried out
            session = self.parts.store.session(session_id)
            if session is None or not session.blocked or session.state == SessionState.LOGGING_OFF:
                return
            try:
                undone = await asyncio.wait_for(self.parts.backend(session).restore_block(session), 10)
            except (BackendError, TimeoutError) as exc:
                log.debug("session %s: cannot check its block: %s", session_id, exc)
                return
            if not undone:
                return
            log.warning("session %s: the block was undone (%s); put back", session_id, "; ".join(undone))
            # Recorded from the reserve's upper half at most (not essential): a student who
            # fills the disk and kills the cover in a loop must not spend what a log-off needs.
            session = self.parts.set(session.with_(block_undone=session.block_undone + 1))
        outcome = Outcome(session_id, Status.BLOCKED, session.user, "; ".join(undone))
        self.parts.audit.one(SYSTEM, Action.BLOCK, outcome,
                             detail={"restored": undone, "times": session.block_undone})

    async def restore_cover(self, backend: SessionBackend, session: Session, failure: Exception) -> None:
        """A block or unblock failed after the backend may have changed something: a bug at the
        backend's edge, or the store could not record it. Put the backend back as the store has it,
        so that what the Dashboard says stays true. A BackendError needs nothing: block and
        unblock are all or nothing at the backend (a backend that fails puts back what it did)."""
        if isinstance(failure, BackendError):
            return
        try:
            if session.blocked:
                message = session.block_message or self.parts.in_session(
                    session, self.parts.settings.block_message)
                await backend.block(session, message)
            else:
                await backend.unblock(session)
        except Exception as exc:  # reported with the first failure; the watch (or a retry) mends it
            log.warning("session %s: could not restore its cover after a failure: %s", session.id, exc)
